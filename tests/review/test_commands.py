"""makedemodb and importclips against real SQLite files and real audio files."""
import io
import json
import sqlite3
import zipfile
from datetime import datetime

import numpy as np
import pytest
import soundfile as sf
from django.core.management import CommandError, call_command

from review.audio import ClipDecodeError, decode_clip, pcm_to_wav
from review.speech import demo_scripts, inject_mistakes
from tests.conftest import blob_of, tone


def schema_of(path):
    conn = sqlite3.connect(path)
    try:
        columns = conn.execute("PRAGMA table_info(s2s_training_data)").fetchall()
        master = sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall())
    finally:
        conn.close()
    return columns, master


def rows_of(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT id, transcript, audio_blob, is_reviewed, is_trained, timestamp FROM s2s_training_data ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def run(*args, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- makedemodb

@pytest.mark.django_db(databases=["default", "s2s"], transaction=True)
def test_preparedemo_remakes_a_demo_file_that_a_stray_connection_left_empty(tmp_path, settings):
    from django.db import connections

    demo = tmp_path / "demo_s2s.db"
    sqlite3.connect(demo).close()  # what any connection to the missing path leaves behind
    settings.S2S_DATABASE = settings.S2S_DEFAULT_DEMO_DATABASE = str(demo)
    conn = connections["s2s"]
    conn.close()
    old, conn.settings_dict["NAME"] = conn.settings_dict["NAME"], str(demo)
    try:
        out, _ = run("preparedemo")
    finally:
        conn.close()
        conn.settings_dict["NAME"] = old
    assert "creating demo clips" in out and "Log in as demo / demo" in out
    assert len(rows_of(demo)) == 40
    out, _ = run("preparedemo")  # a second start keeps what is there
    assert "creating demo clips" not in out



def test_makedemodb_creates_the_exact_seed_schema_and_nothing_else(tmp_path, s2s_path):
    demo = tmp_path / "demo.db"
    run("makedemodb", str(demo), clips=4, seed=3)
    assert schema_of(demo) == schema_of(s2s_path)


def test_makedemodb_fills_it_with_decodable_speech_and_realistic_mistakes(tmp_path):
    demo, truth = tmp_path / "demo.db", tmp_path / "truth.jsonl"
    out, _ = run("makedemodb", str(demo), clips=12, seed=7, truth=str(truth))
    rows = rows_of(demo)
    assert len(rows) == 12
    assert "espeak-ng" in out
    durations = [len(decode_clip(r[2])) / 16000 for r in rows]
    assert all(1.0 < d < 20.0 for d in durations), durations
    # Real speech (with a noise floor) compresses poorly, unlike a pure tone or digital silence.
    assert all(len(r[2]) > 0.4 * 2 * 16000 * d for r, d in zip(rows, durations, strict=True))

    truths = [json.loads(line) for line in truth.read_text().splitlines()]
    assert [t["id"] for t in truths] == [r[0] for r in rows]
    assert all(t["transcript"] == r[1] for t, r in zip(truths, rows, strict=True))
    wrong = [t for t in truths if t["truth"] != t["transcript"]]
    assert 3 <= len(wrong) < 12  # most rows need fixing, some are already right
    reviewed = [r for r in rows if r[3]]
    assert reviewed and all(r[1] == t["truth"] for r, t in zip(rows, truths, strict=True) if r[3])
    days = {datetime.strptime(r[5], "%Y-%m-%d %H:%M:%S").date() for r in rows}
    assert len(days) >= 2


def test_makedemodb_is_deterministic_for_a_seed(tmp_path):
    run("makedemodb", str(tmp_path / "a.db"), clips=3, seed=5)
    run("makedemodb", str(tmp_path / "b.db"), clips=3, seed=5)
    a, b = rows_of(tmp_path / "a.db"), rows_of(tmp_path / "b.db")
    assert [r[1:5] for r in a] == [r[1:5] for r in b]


def test_makedemodb_adds_the_bad_rows_a_real_capture_collects(tmp_path):
    demo = tmp_path / "demo.db"
    out, _ = run("makedemodb", str(demo), clips=3, seed=1, with_bad_rows=True)
    rows = rows_of(demo)
    codes = set()
    for r in rows:
        try:
            decode_clip(r[2])
        except ClipDecodeError as e:
            codes.add(e.code)
    assert {"not_zlib", "truncated", "null_blob", "odd_length"} <= codes
    assert any(r[1] is None for r in rows)
    stamps = [r[5] for r in rows]
    assert None in stamps and 1728051795 in stamps and any(isinstance(s, str) and "T" in s for s in stamps)
    assert "bad rows" in out


def test_makedemodb_refuses_to_overwrite_without_force(tmp_path):
    demo = tmp_path / "demo.db"
    run("makedemodb", str(demo), clips=2)
    with pytest.raises(CommandError, match="--force"):
        run("makedemodb", str(demo), clips=2)
    run("makedemodb", str(demo), clips=3, force=True)
    assert len(rows_of(demo)) == 3


def test_makedemodb_falls_back_to_a_builtin_signal_and_says_so(tmp_path):
    demo = tmp_path / "demo.db"
    out, _ = run("makedemodb", str(demo), clips=3, no_espeak=True)
    assert "built-in" in out
    samples = decode_clip(rows_of(demo)[0][2])
    assert len(samples) > 16000 and np.abs(samples).max() > 0.1


def test_mistakes_are_the_kinds_an_asr_makes():
    rng = np.random.default_rng(0)
    text = "Can you remind me to call Siobhan at 3:30 tomorrow afternoon?"
    seen = set()
    for _ in range(40):
        out, kinds = inject_mistakes(text, rng)
        assert out != text and kinds
        seen.update(kinds)
    assert {"homophone", "name", "number", "dropped_word", "no_punctuation"} <= seen
    assert any(s.transcript == s.truth for s in demo_scripts(30, seed=2))


# ---------------------------------------------------------------- importclips

@pytest.fixture
def clip_folder(tmp_path):
    """Real audio files: 44.1 kHz stereo WAV, 16 kHz FLAC, a corrupt WAV, and a WAV with no transcript."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    t = np.arange(int(44100 * 1.5)) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 440 * t)], axis=1)
    sf.write(folder / "a_stereo.wav", stereo, 44100, subtype="PCM_16")
    (folder / "a_stereo.txt").write_text("Hello from\na stereo file.\n")
    sf.write(folder / "b_mono.flac", tone(2.0), 16000)
    (folder / "b_mono.txt").write_text("A FLAC clip.")
    (folder / "c_broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    (folder / "c_broken.txt").write_text("this file is corrupt")
    sf.write(folder / "d_orphan.wav", tone(1.0), 16000)
    return folder


def test_importclips_from_a_folder_resamples_and_skips_bad_files(clip_folder, s2s_path):
    out, err = run("importclips", str(clip_folder), database=str(s2s_path))
    rows = rows_of(s2s_path)
    assert [r[1] for r in rows] == ["Hello from a stereo file.", "A FLAC clip."]
    stereo = decode_clip(rows[0][2])
    assert abs(len(stereo) - 24000) <= 2  # 1.5 s at 44.1 kHz stereo -> 1.5 s at 16 kHz mono
    assert 0.25 < np.abs(stereo).max() < 0.35
    assert len(decode_clip(rows[1][2])) == 32000
    assert all(r[3] == 0 and r[4] == 0 and r[5] for r in rows)
    assert "c_broken.wav: cannot read audio" in err
    assert "d_orphan.wav: no transcript file d_orphan.txt" in err
    assert "Imported 2" in out and "skipped 2" in out


def test_importclips_from_a_manifest_marks_reviewed_and_reports_bad_lines(clip_folder, s2s_path, tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"audio": "incoming/b_mono.flac", "transcript": "First."}),
        "{not json",
        json.dumps({"audio": "incoming/missing.wav", "transcript": "Gone."}),
        json.dumps({"audio": "incoming/a_stereo.wav", "transcript": "   "}),
        json.dumps({"audio": "incoming/a_stereo.wav", "transcript": "Second.", "timestamp": "2025-10-04 14:23:15"}),
    ]) + "\n")
    out, err = run("importclips", str(manifest), database=str(s2s_path), reviewed=True)
    rows = rows_of(s2s_path)
    assert [(r[1], r[3]) for r in rows] == [("First.", 1), ("Second.", 1)]
    assert rows[1][5] == "2025-10-04 14:23:15"
    assert "line 2: not JSON" in err and "audio file not found" in err and "transcript is empty" in err


def test_an_export_zip_reimports(s2s_path, tmp_path):
    buf = io.BytesIO()
    samples = tone(1.0)
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("audio/7.wav", pcm_to_wav(np.frombuffer(__import__("zlib").decompress(blob_of(samples)), "<i2")))
        zf.writestr("manifest.jsonl", json.dumps({
            "id": 7, "audio": "audio/7.wav", "transcript": "Exported.", "original_transcript": "exported",
            "is_reviewed": True, "is_trained": True, "timestamp": "2026-01-02 03:04:05", "duration_s": 1.0,
        }) + "\n")
    export = tmp_path / "export.zip"
    export.write_bytes(buf.getvalue())
    run("importclips", str(export), database=str(s2s_path))
    (row,) = rows_of(s2s_path)
    assert row[1:2] == ("Exported.",) and row[3] == 1 and row[4] == 1 and row[5] == "2026-01-02 03:04:05"
    assert row[2] == blob_of(samples)  # same PCM in, same blob out: a lossless round trip


def test_importclips_refuses_a_file_that_is_not_a_capture_database(clip_folder, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run("importclips", str(clip_folder), database=str(tmp_path / "nope.db"))
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(CommandError, match="no s2s_training_data table"):
        run("importclips", str(clip_folder), database=str(empty))


def test_importclips_waits_for_the_live_app_and_fails_cleanly_when_it_never_lets_go(clip_folder, s2s_path, settings):
    import threading

    settings.S2S_SQLITE_BUSY_TIMEOUT_MS = 3000
    live = sqlite3.connect(s2s_path, isolation_level=None, check_same_thread=False)
    live.execute("BEGIN IMMEDIATE")  # the live app is writing a capture right now
    threading.Timer(0.3, lambda: live.execute("COMMIT")).start()
    run("importclips", str(clip_folder), database=str(s2s_path))
    assert len(rows_of(s2s_path)) == 2

    live.execute("DELETE FROM s2s_training_data")  # else every clip is a duplicate and nothing needs writing
    settings.S2S_SQLITE_BUSY_TIMEOUT_MS = 100
    live.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(CommandError, match="database write failed after 0 imported"):
            run("importclips", str(clip_folder), database=str(s2s_path))
    finally:
        live.execute("COMMIT")
        live.close()
    assert len(rows_of(s2s_path)) == 0  # nothing half-written
