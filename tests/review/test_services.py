import sqlite3
import zlib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from review import services
from review.models import ClipEdit, ClipMeta, ReviewSession, TrashedClip
from review.selectors import ClipNotFound, clip_get
from tests.conftest import S2S, blob_of, tone

pytestmark = S2S


def row(path, clip_id):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT id, transcript, audio_blob, is_reviewed, is_trained, timestamp FROM s2s_training_data WHERE id = ?",
            (clip_id,),
        ).fetchone()
    finally:
        conn.close()


def test_it_keeps_original_transcript_on_first_edit(insert_clip, alice, s2s_db):
    clip_id = insert_clip("helo wrld")
    v2 = services.clip_update(clip_id, alice, '"1"', transcript="hello world")
    v3 = services.clip_update(clip_id, alice, v2, transcript="Hello, world.")
    assert (v2, v3) == (2, 3)
    meta = ClipMeta.objects.get(clip_id=clip_id)
    assert meta.original_transcript == "helo wrld"
    assert row(s2s_db, clip_id)[1] == "Hello, world."
    edits = list(ClipEdit.objects.filter(clip_id=clip_id).order_by("id").values_list("username", "old_value", "new_value"))
    assert edits == [("alice", "helo wrld", "hello world"), ("alice", "hello world", "Hello, world.")]


def test_it_rejects_a_stale_version_and_writes_nothing(insert_clip, alice, s2s_db):
    clip_id = insert_clip("first")
    services.clip_update(clip_id, alice, "1", transcript="second")
    with pytest.raises(services.ClipConflict) as err:
        services.clip_update(clip_id, alice, '"1"', transcript="stale overwrite")
    assert err.value.current_version == 2
    assert "reload" in str(err.value)
    assert row(s2s_db, clip_id)[1] == "second"
    assert ClipMeta.objects.get(clip_id=clip_id).version == 2


@pytest.mark.parametrize("tag", ['W/"4"', '"4"', "4", 4])
def test_it_accepts_every_if_match_spelling(tag):
    assert services.parse_version(tag) == 4


def test_a_malformed_if_match_is_an_input_error():
    with pytest.raises(services.ReviewInputError) as err:
        services.parse_version('"abc"')
    assert err.value.field == "version"


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("x" * 2001, "2001 characters"),
    ("bell\x07", "U+0007"),
    ("nul\x00byte", "U+0000"),
    ("escape \x1b[31m", "U+001B"),
    ("lone surrogate \ud800", "U+D800"),
])
def test_it_rejects_bad_transcripts_with_a_reason(insert_clip, alice, s2s_db, text, fragment):
    clip_id = insert_clip("keep me")
    with pytest.raises(services.ReviewInputError) as err:
        services.clip_update(clip_id, alice, None, transcript=text)
    assert err.value.field == "transcript"
    assert fragment in err.value.message
    assert row(s2s_db, clip_id)[1] == "keep me"


def test_it_trims_and_keeps_newlines_tabs_and_hostile_text_as_is(insert_clip, alice, s2s_db):
    clip_id = insert_clip("x")
    hostile = "<script>alert('x')</script>\n\tline two & \"quotes\""
    services.clip_update(clip_id, alice, None, transcript=f"  {hostile}  \r\n")
    assert row(s2s_db, clip_id)[1] == hostile
    services.clip_update(clip_id, alice, None, transcript="y" * 2000)
    assert len(row(s2s_db, clip_id)[1]) == 2000


def test_marking_reviewed_records_who_when_and_review_time(insert_clip, alice, s2s_db):
    clip_id = insert_clip("ok")
    services.clip_mark_reviewed(clip_id, alice, review_seconds=12.5)
    assert row(s2s_db, clip_id)[3] == 1
    meta = ClipMeta.objects.get(clip_id=clip_id)
    assert meta.reviewed_by == "alice" and meta.reviewed_at is not None
    assert meta.review_seconds == 12.5
    assert list(ReviewSession.objects.values_list("clip_id", "username", "seconds")) == [(clip_id, "alice", 12.5)]
    assert ClipEdit.objects.filter(clip_id=clip_id, field="is_reviewed", new_value="1").exists()


def test_update_of_a_missing_clip_is_not_found(s2s_db, alice):
    with pytest.raises(ClipNotFound):
        services.clip_update(999, alice, None, transcript="x")


def test_trash_moves_the_whole_row_and_restore_brings_back_same_id_and_bytes(insert_clip, alice, s2s_db):
    blob = blob_of(tone(1.0))
    clip_id = insert_clip("to trash", blob=blob, is_reviewed=1, is_trained=1, timestamp="2025-10-04T14:23:15.5Z")
    insert_clip("neighbour")
    before = row(s2s_db, clip_id)
    trash_id = services.clip_trash(clip_id, alice)
    assert row(s2s_db, clip_id) is None
    trashed = TrashedClip.objects.get(id=trash_id)
    assert (trashed.clip_id, trashed.deleted_by, bytes(trashed.audio_blob)) == (clip_id, "alice", blob)
    assert services.clip_restore(trash_id, alice) == clip_id
    assert row(s2s_db, clip_id) == before
    assert not TrashedClip.objects.exists()
    assert ClipEdit.objects.filter(clip_id=clip_id, field="restored").exists()


@pytest.mark.parametrize("timestamp", [None, "2025-13-45 10:00:00", "garbage", 1728052995])
def test_trash_keeps_odd_values_exactly(insert_clip, alice, s2s_db, timestamp):
    clip_id = insert_clip(None, blob=None, timestamp=timestamp)
    services.clip_restore(services.clip_trash(clip_id, alice), alice)
    assert row(s2s_db, clip_id) == (clip_id, None, None, 0, 0, timestamp)


def test_restore_refuses_an_id_in_use_and_keeps_the_trash(insert_clip, alice, s2s_db):
    clip_id = insert_clip("original")
    trash_id = services.clip_trash(clip_id, alice)
    conn = sqlite3.connect(s2s_db)
    conn.execute("INSERT INTO s2s_training_data (id, transcript) VALUES (?, 'squatter')", (clip_id,))
    conn.commit()
    conn.close()
    with pytest.raises(services.ClipIdTaken, match=f"clip id {clip_id} is in use"):
        services.clip_restore(trash_id, alice)
    assert TrashedClip.objects.filter(id=trash_id).exists()
    assert row(s2s_db, clip_id)[1] == "squatter"


def test_restore_of_unknown_trash_item_is_not_found(s2s_db, alice):
    with pytest.raises(services.TrashNotFound):
        services.clip_restore(42, alice)


def test_purge_by_id_by_age_and_all(insert_clip, alice, s2s_db):
    ids = [insert_clip(f"c{i}") for i in range(4)]
    trash = [services.clip_trash(i, alice) for i in ids]
    old = timezone.now() - timedelta(days=40)
    TrashedClip.objects.filter(id__in=trash[:2]).update(deleted_at=old)
    assert services.trash_purge([trash[3]]) == 1
    assert services.trash_purge(older_than_days=30) == 2
    assert list(TrashedClip.objects.values_list("id", flat=True)) == [trash[2]]
    assert not ClipMeta.objects.filter(clip_id__in=[ids[0], ids[1], ids[3]]).exists()
    assert services.trash_purge() == 1
    assert not TrashedClip.objects.exists()
    with pytest.raises(services.TrashNotFound):
        services.trash_purge_one(trash[0])


def test_bulk_flags_change_only_what_differs_and_bump_versions(insert_clip, alice, s2s_db):
    a, b = insert_clip("a", is_reviewed=1), insert_clip("b")
    assert services.clips_set_flags([a, b], alice, is_reviewed=True) == 1
    assert [row(s2s_db, i)[3] for i in (a, b)] == [1, 1]
    assert ClipMeta.objects.get(clip_id=b).version == 2
    assert not ClipMeta.objects.filter(clip_id=a).exists()
    assert services.clips_set_flags([a, b], alice, is_trained=False) == 0
    assert services.clips_set_flags([a], alice, is_reviewed=False, is_trained=True) == 1
    assert row(s2s_db, a)[3:5] == (0, 1)


def test_a_locked_file_is_retried_then_refused_and_nothing_is_written(insert_clip, alice, s2s_db, settings):
    clip_id = insert_clip("before")
    settings.S2S_WRITE_BACKOFF_S = 0.01
    connections["s2s"].ensure_connection()
    connections["s2s"].cursor().execute("PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(s2s_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO s2s_training_data (transcript) VALUES ('live app writing')")
    try:
        with pytest.raises(services.ClipDatabaseLocked, match="locked"):
            services.clip_update(clip_id, alice, None, transcript="after")
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert row(s2s_db, clip_id)[1] == "before"
    assert services.clip_update(clip_id, alice, None, transcript="after") == 2
    assert row(s2s_db, clip_id)[1] == "after"


def test_metric_cache_fills_in_batches_and_flags_bad_blobs(insert_clip, s2s_db):
    good = [insert_clip(f"g{i}", seconds=1.5) for i in range(3)]
    bad = insert_clip("bad", blob=b"not zlib at all")
    odd = insert_clip("odd", blob=zlib.compress(b"\x01\x02\x03"))
    result = services.clipmeta_fill(batch=2)
    assert result == {"scanned": 5, "problems": 2}
    metas = {m.clip_id: m for m in ClipMeta.objects.all()}
    assert all(metas[i].duration_s == pytest.approx(1.5) and metas[i].rms_dbfs < 0 for i in good)
    assert (metas[bad].problem, metas[odd].problem) == ("not_zlib", "odd_length")
    assert services.clipmeta_fill() == {"scanned": 0, "problems": 0}


def test_scanclips_command_measures_everything_once(insert_clip, s2s_db, capsys):
    for i in range(3):
        insert_clip(f"c{i}", seconds=1.0)
    call_command("scanclips", batch=2)
    assert "Measured 3 clips (0 with problems)" in capsys.readouterr().out
    assert ClipMeta.objects.filter(duration_s__isnull=False).count() == 3


def test_detail_measures_a_clip_the_first_time_and_caches_it(insert_clip, s2s_db):
    clip_id = insert_clip("x", seconds=2.0)
    first = clip_get(clip_id)
    assert first.measured is not None and first.duration_s == pytest.approx(2.0)
    assert services.clipmeta_save(clip_id, first.measured)
    second = clip_get(clip_id)
    assert second.measured is None and second.duration_s == pytest.approx(2.0)
    assert second.metrics["rms_dbfs"] == first.metrics["rms_dbfs"]
