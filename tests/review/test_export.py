"""Export (exportclips, the API) and import (importclips) in every format: a round trip loses nothing."""
import io
import json
import sqlite3
import zipfile

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from review import services
from review.audio import decode_pcm
from tests.conftest import S2S, blob_of, make_s2s_file, tone

pytestmark = S2S


def run(*args, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def rows_of(path):
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT id, transcript, audio_blob, is_reviewed, is_trained, timestamp FROM s2s_training_data ORDER BY id"
        ).fetchall()
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 's2s_review_clipmeta'").fetchone()
        originals = dict(conn.execute("SELECT clip_id, original_transcript FROM s2s_review_clipmeta"
                                      " WHERE original_transcript IS NOT NULL").fetchall()) if has_meta else {}
    finally:
        conn.close()
    return [{"text": r[1], "samples": decode_pcm(r[2]).tolist() if r[1] != "no audio here" else None, "is_reviewed": r[3], "is_trained": r[4],
             "timestamp": r[5], "original": originals.get(r[0])} for r in rows]


@pytest.fixture
def varied_clips(insert_clip, alice):
    """Four clips covering every flag pair, an edited transcript, odd text, and one with broken audio."""
    ids = [
        insert_clip("plain, reviewed and trained", is_reviewed=1, is_trained=1, timestamp="2025-10-01 09:00:00", seconds=1.5),
        insert_clip("  spaces  kept\tand ünïcode ✓", timestamp="2025-10-02T10:00:00Z", seconds=2.0),
        insert_clip("helo wrld", timestamp="2025-10-03 08:00:00", seconds=1.0),
        insert_clip("only trained", is_trained=1, timestamp="2025-10-04 08:00:00", seconds=0.5),
    ]
    services.clip_update(ids[2], alice, None, transcript="hello world", is_reviewed=True)
    broken = insert_clip("no audio here", blob=b"not zlib")
    return ids, broken


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "hf"])
@pytest.mark.parametrize("zipped", [False, True])
def test_export_then_import_loses_nothing(varied_clips, s2s_db, tmp_path, fmt, zipped):
    out = tmp_path / (f"export-{fmt}.zip" if zipped else f"export-{fmt}")
    stdout, _ = run("exportclips", str(out), fmt=fmt)
    assert "Exported 4 clip(s)" in stdout and "1 clip(s) without readable audio" in stdout

    target = make_s2s_file(tmp_path / "target.db")
    stdout, stderr = run("importclips", str(out), database=str(target))
    assert "Imported 4 clip(s)" in stdout and "skipped 0" in stdout, stderr
    source = [r for r in rows_of(s2s_db) if r["text"] != "no audio here"]
    assert rows_of(target) == source  # same samples, text, flags, timestamps and original transcripts
    assert source[2]["original"] == "helo wrld" and source[2]["text"] == "hello world"


def test_importing_the_same_export_twice_skips_duplicates_and_says_why(varied_clips, tmp_path):
    out = tmp_path / "export.zip"
    run("exportclips", str(out), fmt="jsonl")
    target = make_s2s_file(tmp_path / "target.db")
    run("importclips", str(out), database=str(target))
    stdout, stderr = run("importclips", str(out), database=str(target))
    assert "Imported 0 clip(s)" in stdout and "skipped 4 (4 duplicate(s))" in stdout
    assert stderr.count("duplicate: same audio as clip") == 4
    assert len(rows_of(target)) == 4


def test_duplicates_inside_one_source_are_skipped(tmp_path, s2s_db):
    import soundfile as sf

    folder = tmp_path / "incoming"
    folder.mkdir()
    pcm = decode_pcm(blob_of(tone(1.0)))
    for name in ("a", "b"):  # the same samples twice, once as FLAC
        sf.write(folder / f"{name}.{'wav' if name == 'a' else 'flac'}", pcm, 16000, subtype="PCM_16")
        (folder / f"{name}.txt").write_text(f"clip {name}")
    stdout, stderr = run("importclips", str(folder), database=str(s2s_db))
    assert "Imported 1" in stdout and "b.flac: duplicate: same audio as a.wav in this import" in stderr


def test_the_hf_export_opens_with_load_from_disk(varied_clips, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"
    run("exportclips", str(out), fmt="hf", reviewed="1")
    ds = datasets.load_from_disk(str(out))
    assert ds.num_rows == 2 and ds["text"] == ["plain, reviewed and trained", "hello world"]
    assert ds["is_trained"] == [True, False] and ds["original_text"] == ["plain, reviewed and trained", "helo wrld"]
    assert ds.features["audio"].sampling_rate == 16000
    raw = ds.cast_column("audio", datasets.Audio(decode=False))[1]["audio"]
    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(raw["bytes"]), dtype="int16")
    assert rate == 16000 and np.array_equal(samples, decode_pcm(blob_of(tone(1.0))))


def test_the_jsonl_manifest_is_nemo_shaped(varied_clips, tmp_path):
    out = tmp_path / "nemo"
    run("exportclips", str(out), q="world")
    (entry,) = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert entry["audio_filepath"] == f"audio/{varied_clips[0][2]}.wav" and entry["duration"] == 1.0
    assert entry["text"] == "hello world" and (out / entry["audio_filepath"]).is_file()


def test_an_api_export_zip_imports(api, varied_clips, tmp_path, s2s_db):
    response = api.get("/api/export?format=csv&trained=1")
    out = tmp_path / "api.zip"
    out.write_bytes(b"".join(response.streaming_content))
    assert {"metadata.csv", "audio/1.wav", "audio/4.wav"} <= set(zipfile.ZipFile(out).namelist())
    target = make_s2s_file(tmp_path / "target.db")
    run("importclips", str(out), database=str(target))
    assert [(r["text"], r["is_trained"]) for r in rows_of(target)] == [("plain, reviewed and trained", 1), ("only trained", 1)]


def test_exportclips_refuses_bad_input(varied_clips, tmp_path):
    with pytest.raises(CommandError, match="bad filter"):
        run("exportclips", str(tmp_path / "x"), reviewed="maybe")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(CommandError, match="not empty"):
        run("exportclips", str(tmp_path / "full"))
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_a_dataset_saved_by_the_datasets_library_imports(tmp_path, s2s_db):
    """A folder `datasets` itself wrote (Common Voice style `sentence` column), not our writer."""
    datasets = pytest.importorskip("datasets")
    from review.audio import pcm_to_wav

    pcm = decode_pcm(blob_of(tone(1.2)))
    ds = datasets.Dataset.from_dict({"audio": [{"bytes": pcm_to_wav(pcm), "path": "x.wav"}, {"bytes": b"RIFF junk", "path": "y.wav"}],
                                     "sentence": ["From the hub.", "Broken audio."]})
    ds.cast_column("audio", datasets.Audio(sampling_rate=16000)).save_to_disk(str(tmp_path / "cv"))
    stdout, stderr = run("importclips", str(tmp_path / "cv"), database=str(s2s_db))
    assert "Imported 1" in stdout and "cv row 2: cannot read audio" in stderr
    (row,) = rows_of(s2s_db)
    assert row["text"] == "From the hub." and row["samples"] == pcm.tolist() and row["is_trained"] == 0


def test_stored_hashes_are_cached_and_renewed_when_a_blob_changes(tmp_path, s2s_db, insert_clip):
    import soundfile as sf

    first = insert_clip("stored", blob=blob_of(tone(1.0)))
    folder = tmp_path / "incoming"
    folder.mkdir()
    sf.write(folder / "same.wav", decode_pcm(blob_of(tone(1.0))), 16000, subtype="PCM_16")
    (folder / "same.txt").write_text("same audio")
    _, stderr = run("importclips", str(folder), database=str(s2s_db))
    assert f"duplicate: same audio as clip {first}" in stderr
    conn = sqlite3.connect(s2s_db)
    assert conn.execute("SELECT clip_id FROM s2s_review_audiohash").fetchall() == [(first,)]
    conn.execute("UPDATE s2s_training_data SET audio_blob = ? WHERE id = ?", (blob_of(tone(2.5)), first))
    conn.commit()
    conn.close()
    stdout, _ = run("importclips", str(folder), database=str(s2s_db))  # the cached hash is stale now
    assert "Imported 1" in stdout
    conn = sqlite3.connect(s2s_db)
    assert len(conn.execute("SELECT clip_id FROM s2s_review_audiohash").fetchall()) == 2
    conn.close()
