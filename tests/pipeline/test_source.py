"""Reading reviewed clips from the live app's file, and marking them trained with a backup first."""
import sqlite3
import threading
import time
import zlib

import numpy as np
import pytest

from tests.conftest import blob_of, tone
from training_jobs.pipeline.source import SourceError, mark_trained, read_reviewed_clips


def flags(path):
    conn = sqlite3.connect(path)
    rows = dict(conn.execute("SELECT id, is_trained FROM s2s_training_data").fetchall())
    conn.close()
    return rows


def test_it_reads_only_reviewed_clips_in_id_order_as_float32(s2s_path, insert_clip):
    a = insert_clip("first clip", is_reviewed=1)
    insert_clip("not reviewed yet", is_reviewed=0)
    c = insert_clip("third clip", is_reviewed=1, is_trained=1)
    records, excluded = read_reviewed_clips(s2s_path)
    assert [r.id for r in records] == [a, c]
    assert excluded == []
    assert records[0].transcript == "first clip"
    assert records[0].samples.dtype == np.float32
    assert len(records[0].samples) == 32000
    assert np.allclose(records[0].samples, tone(2.0), atol=1 / 32768)


def test_only_untrained_leaves_out_clips_already_trained_on(s2s_path, insert_clip):
    insert_clip("trained before", is_reviewed=1, is_trained=1)
    fresh = insert_clip("never trained", is_reviewed=1, is_trained=0)
    records, _ = read_reviewed_clips(s2s_path, only_untrained=True)
    assert [r.id for r in records] == [fresh]


def test_undecodable_audio_is_excluded_with_its_reason_not_fatal(s2s_path, insert_clip):
    good = insert_clip("fine", is_reviewed=1)
    null = insert_clip("null blob", blob=None, is_reviewed=1)
    junk = insert_clip("not zlib", blob=b"\x00\x01garbage", is_reviewed=1)
    odd = insert_clip("odd bytes", blob=zlib.compress(b"abc"), is_reviewed=1)
    records, excluded = read_reviewed_clips(s2s_path)
    assert [r.id for r in records] == [good]
    by_id = {e.id: e for e in excluded}
    assert by_id[null].code == "null_blob" and "NULL" in by_id[null].reason
    assert by_id[junk].code == "not_zlib"
    assert by_id[odd].code == "odd_length"


def test_content_hash_follows_audio_and_text_not_compression(s2s_path, insert_clip):
    samples = tone(1.0)
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes()
    a = insert_clip("same", blob=zlib.compress(pcm, 1), is_reviewed=1)
    b = insert_clip("same", blob=zlib.compress(pcm, 9), is_reviewed=1)
    c = insert_clip("different text", blob=zlib.compress(pcm, 9), is_reviewed=1)
    hashes = {r.id: r.content_hash for r in read_reviewed_clips(s2s_path)[0]}
    assert hashes[a] == hashes[b] != hashes[c]


def test_reading_never_writes_and_works_while_the_live_app_holds_a_write_lock(s2s_path, insert_clip):
    clip = insert_clip("committed", is_reviewed=1)
    writer = sqlite3.connect(s2s_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO s2s_training_data (transcript, audio_blob, is_reviewed) VALUES ('pending', ?, 1)",
                   (blob_of(tone(1.0)),))
    try:
        records, _ = read_reviewed_clips(s2s_path)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert [r.id for r in records] == [clip]


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        read_reviewed_clips(tmp_path / "nope.db")


def test_mark_trained_backs_up_first_then_flags_only_the_given_clips(s2s_path, insert_clip, tmp_path):
    a, b, c = (insert_clip(f"clip {i}", is_reviewed=1) for i in range(3))
    backup = mark_trained(s2s_path, [a, c], tmp_path / "backups")
    assert flags(s2s_path) == {a: 1, b: 0, c: 1}
    assert backup.is_file() and backup.parent == tmp_path / "backups"
    assert flags(backup) == {a: 0, b: 0, c: 0}  # the copy is the state before the update


def test_mark_trained_waits_for_a_short_lock(s2s_path, insert_clip, tmp_path):
    clip = insert_clip("clip", is_reviewed=1)
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        conn = sqlite3.connect(s2s_path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(5)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(5)
    threading.Timer(0.6, release.set).start()
    t0 = time.monotonic()
    mark_trained(s2s_path, [clip], tmp_path / "b", busy_timeout_ms=100, retry_wait_s=0.1)
    holder.join()
    assert time.monotonic() - t0 >= 0.5
    assert flags(s2s_path) == {clip: 1}


def test_mark_trained_gives_up_on_a_lock_that_never_goes_and_changes_nothing(s2s_path, insert_clip, tmp_path):
    clip = insert_clip("clip", is_reviewed=1)
    holder = sqlite3.connect(s2s_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(SourceError, match="locked.*Backup kept"):
            mark_trained(s2s_path, [clip], tmp_path / "b", attempts=2, busy_timeout_ms=50, retry_wait_s=0.01)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert flags(s2s_path) == {clip: 0}
