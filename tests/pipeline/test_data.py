"""Validation, the stable hash split and the on-disk snapshot the trainer reads."""
import json
import sqlite3

import numpy as np
import pytest

from tests.conftest import tone
from tests.pipeline.training_fixtures import (  # noqa: F401
    SENTENCES,
    bundled_tokenizer,
    capture_db,
    record,
    records,
    tiny_whisper_fixture,
)
from training_jobs.pipeline.config import TrainConfig
from training_jobs.pipeline.data import (
    ValidationLimits,
    check_clip,
    load_snapshot,
    prepare_snapshot,
    snapshot_from_database,
    split_for,
    split_rows,
)
from training_jobs.pipeline.source import ClipRecord, ExcludedClip, content_hash


def clip(samples, text="hello there", clip_id=1):
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2")
    return ClipRecord(clip_id, text, pcm.astype(np.float32) / 32768, content_hash(text, pcm))


@pytest.mark.parametrize("samples, text, code", [
    (tone(2.0), "   ", "empty_text"),
    (tone(0.2), "hi", "too_short"),
    (tone(31.0), "a long ramble " * 20, "too_long"),
    (tone(1.0), "this transcript is far too long for one second of audio to hold", "rate_too_high"),
    (tone(10.0), "hi", "rate_too_low"),
    (np.zeros(32000, dtype=np.float32), "hello there", "silent"),
    (np.sign(tone(2.0, amp=0.9)) * 1.0, "hello there", "clipped"),
])
def test_it_excludes_unusable_pairs_with_a_reason(samples, text, code):
    problem = check_clip(clip(samples, text))
    assert problem is not None and problem[0] == code
    assert problem[1]  # a sentence a reviewer can act on


def test_a_normal_clip_passes():
    assert check_clip(clip(tone(2.0), "hello there my friend")) is None


def test_label_length_is_checked_with_the_real_tokenizer():
    tok = bundled_tokenizer()
    limits = ValidationLimits(max_label_tokens=6)
    assert check_clip(clip(tone(2.0), "hello there"), limits, tok) is None
    code, reason = check_clip(clip(tone(3.0), "hello there my dear old friend"), limits, tok)
    assert code == "too_many_tokens" and "over Whisper's 6" in reason


def test_split_is_stable_independent_and_roughly_proportional():
    first = [split_for(i, 0.1, 0.2) for i in range(1, 10001)]
    assert first == [split_for(i, 0.1, 0.2) for i in range(1, 10001)]
    assert split_for(1234, 0.1, 0.2) == first[1233]  # alone, without the others
    share = {s: first.count(s) / len(first) for s in ("train", "validation", "test")}
    assert share["test"] == pytest.approx(0.2, abs=0.015)
    assert share["validation"] == pytest.approx(0.1, abs=0.015)
    assert {split_for(i, 0.0, 0.0) for i in range(100)} == {"train"}


def test_snapshot_writes_dataset_and_manifest_with_every_exclusion(tmp_path):
    recs = records(10) + [clip(np.zeros(16000, dtype=np.float32), "quiet", clip_id=50)]
    dup = records(10)[3]
    recs.append(ClipRecord(60, dup.transcript, dup.samples, dup.content_hash))
    config = TrainConfig(val_split=0.2, test_split=0.2)
    info = prepare_snapshot(recs, config, tmp_path / "snap", excluded=[ExcludedClip(70, "audio_blob is NULL", "null_blob")])
    assert sum(info.counts.values()) == 10
    assert {e.id: e.code for e in info.excluded} == {50: "silent", 60: "duplicate", 70: "null_blob"}
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert manifest["snapshot_hash"] == info.manifest_hash
    assert manifest["config"]["val_split"] == 0.2
    for split, rows in manifest["splits"].items():
        for clip_id, chash in rows:
            assert split_for(clip_id, 0.2, 0.2) == split
            assert chash == recs[clip_id - 1].content_hash
    assert {e["id"]: e["reason"] for e in manifest["excluded"]}[60] == "same audio and transcript as clip 4"

    dataset, loaded = load_snapshot(tmp_path / "snap")
    assert loaded == manifest
    assert set(dataset) == {"train", "validation", "test"}
    row = dataset["train"][0]
    assert set(row) == {"id", "audio", "text", "split"} and row["split"] == "train"
    original = recs[row["id"] - 1]
    assert np.array_equal(np.asarray(row["audio"], dtype=np.float32), original.samples)
    assert row["text"] == original.transcript
    clip_id, samples, text = split_rows(dataset["train"])[0]
    assert (clip_id, text) == (row["id"], row["text"])
    assert samples.dtype == np.float32 and np.array_equal(samples, original.samples)


def test_snapshot_hash_is_stable_and_changes_with_the_data(tmp_path):
    config = TrainConfig(val_split=0.2, test_split=0.2)
    a = prepare_snapshot(records(8), config, tmp_path / "a").manifest_hash
    b = prepare_snapshot(records(8), config, tmp_path / "b").manifest_hash
    edited = records(8)
    edited[2] = record(3, "an edited transcript")
    c = prepare_snapshot(edited, config, tmp_path / "c").manifest_hash
    assert a == b != c


def test_adding_clips_never_moves_existing_ones_between_splits(tmp_path):
    config = TrainConfig(val_split=0.25, test_split=0.25)
    small = prepare_snapshot(records(6), config, tmp_path / "small").manifest["splits"]
    large = prepare_snapshot(records(12), config, tmp_path / "large").manifest["splits"]
    for split in small:
        assert {r[0] for r in small[split]} <= {r[0] for r in large[split]}


def test_preparing_again_into_the_same_directory_replaces_the_snapshot(tmp_path):
    prepare_snapshot(records(6), TrainConfig(val_split=0.2, test_split=0.2), tmp_path / "s")
    info = prepare_snapshot(records(3), TrainConfig(val_split=0.0, test_split=0.0), tmp_path / "s")
    dataset, manifest = load_snapshot(info.path)
    assert list(dataset["train"]["id"]) == [1, 2, 3] and len(dataset["test"]) == 0
    assert manifest["snapshot_hash"] == info.manifest_hash


def test_empty_splits_round_trip(tmp_path):
    info = prepare_snapshot(records(3), TrainConfig(val_split=0.0, test_split=0.0), tmp_path / "s")
    dataset, _ = load_snapshot(info.path)
    assert (len(dataset["train"]), len(dataset["validation"]), len(dataset["test"])) == (3, 0, 0)


def test_a_tampered_snapshot_is_refused(tmp_path):
    info = prepare_snapshot(records(6), TrainConfig(val_split=0.0, test_split=0.0), tmp_path / "s")
    manifest = json.loads((info.path / "manifest.json").read_text())
    manifest["splits"]["train"].pop()
    (info.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="inconsistent"):
        load_snapshot(info.path)
    with pytest.raises(FileNotFoundError, match="not a training snapshot"):
        load_snapshot(tmp_path)


def test_progress_is_reported_while_checking(tmp_path):
    events = []
    prepare_snapshot(records(4), TrainConfig(), tmp_path / "s", on_progress=events.append)
    assert events[-1].stage == "preparing" and (events[-1].step, events[-1].total) == (4, 4)


def test_a_snapshot_straight_from_the_capture_file_lists_unreadable_clips_too(tmp_path, tiny_whisper):
    rows = [(SENTENCES[i], tone(1.0, freq=200 + 30 * i), 1, 0) for i in range(4)] + [("unreviewed", tone(1.0), 0, 0)]
    db = capture_db(tmp_path / "s2s.db", rows)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO s2s_training_data (transcript, audio_blob, is_reviewed) VALUES ('broken', x'00ff', 1)")
    conn.commit()
    conn.close()
    config = TrainConfig(base_model=str(tiny_whisper), val_split=0.0, test_split=0.0)
    info = snapshot_from_database(db, config, tmp_path / "snap", cache_dir=tmp_path / "cache")
    assert info.counts["train"] == 4
    assert [(e.id, e.code) for e in info.excluded] == [(6, "not_zlib")]
