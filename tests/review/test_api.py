"""The REST contract (docs/api.md), end to end through DRF against real seed-schema SQLite files."""
import io
import json
import re
import sqlite3
import zipfile
import zlib

import numpy as np
import pytest
import soundfile as sf
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from review.audio import decode_pcm, pcm_to_wav
from tests.conftest import S2S, blob_of, tone

pytestmark = S2S


def ids_of(response):
    assert response.status_code == 200, response.content
    return [r["id"] for r in response.json()["results"]]


@pytest.fixture
def clips(insert_clip):
    """Six clips over three days with mixed flags; ids 1..6."""
    return [
        insert_clip("one fish", is_reviewed=1, is_trained=1, timestamp="2025-10-01 09:00:00"),
        insert_clip("two fish", is_reviewed=1, timestamp="2025-10-01T10:00:00Z"),
        insert_clip("red fish", timestamp="2025-10-02 08:00:00"),
        insert_clip("blue fish 100%", timestamp="2025-10-02 08:00:00"),
        insert_clip("a_b c", is_reviewed=1, timestamp="2025-10-03 23:59:59.500"),
        insert_clip("last one", timestamp="2025-10-03 12:00:00"),
    ]


# ---- list -------------------------------------------------------------------------------------

def test_list_answers_the_contract_shape_with_booleans(api, clips):
    body = api.get("/api/entries").json()
    assert body["count"] == 6 and body["next"] is None and body["previous"] is None
    first = body["results"][0]
    assert set(first) == {"id", "transcript", "original_transcript", "is_reviewed", "is_trained", "timestamp",
                          "duration_s", "problem", "version"}
    assert first == {"id": 1, "transcript": "one fish", "original_transcript": "one fish", "is_reviewed": True,
                     "is_trained": True, "timestamp": "2025-10-01T09:00:00Z", "duration_s": None, "problem": "",
                     "version": 1}


def test_list_and_stats_never_read_audio_blobs(api, clips):
    with CaptureQueriesContext(connections["s2s"]) as ctx:
        assert api.get("/api/entries?reviewed=0&q=fish&has_problem=0&ordering=-timestamp").status_code == 200
        assert api.get("/api/entries?date_from=2025-10-01").status_code == 200
        assert api.get("/api/stats").status_code == 200
    for q in ctx.captured_queries:
        sql = q["sql"].replace("typeof(audio_blob)", "").replace("audio_blob IS NULL", "")
        assert "audio_blob" not in sql, q["sql"]


@pytest.mark.parametrize("query, expected", [
    ("reviewed=&q=&ordering=&date_from=", [1, 2, 3, 4, 5, 6]),  # blank form fields mean "any"
    ("reviewed=1", [1, 2, 5]),
    ("reviewed=0", [3, 4, 6]),
    ("trained=1", [1]),
    ("reviewed=1&trained=0", [2, 5]),
    ("date_from=2025-10-02", [3, 4, 5, 6]),
    ("date_to=2025-10-01", [1, 2]),
    ("date_from=2025-10-02&date_to=2025-10-02", [3, 4]),
    ("date_from=2025-10-03&date_to=2025-10-03", [5, 6]),
    ("id_min=2&id_max=4", [2, 3, 4]),
    ("q=FISH", [1, 2, 3, 4]),
    ("q=100%25", [4]),
    ("q=a_b", [5]),
    ("q=%25", [4]),
    ("reviewed=0&q=fish", [3, 4]),
    ("ordering=-id", [6, 5, 4, 3, 2, 1]),
    ("ordering=timestamp", [1, 2, 3, 4, 6, 5]),
    ("ordering=-timestamp", [5, 6, 4, 3, 2, 1]),
    ("reviewed=0&ordering=-timestamp&date_to=2025-10-02", [4, 3]),
])
def test_list_filters(api, clips, query, expected):
    assert ids_of(api.get(f"/api/entries?{query}")) == expected


def test_timestamp_order_is_the_stored_text_order(api, insert_clip):
    """Documented limit: the raw column is sorted as text, so on one day a space sorts before a T."""
    late = insert_clip("a", timestamp="2025-10-03 23:00:00")
    early = insert_clip("b", timestamp="2025-10-03T01:00:00Z")
    assert ids_of(api.get("/api/entries?ordering=timestamp")) == [late, early]
    assert ids_of(api.get("/api/entries?date_from=2025-10-03&date_to=2025-10-03")) == [late, early]


def test_pagination_pages_and_caps_page_size(api, clips):
    page1 = api.get("/api/entries?page_size=4").json()
    page2 = api.get("/api/entries?page_size=4&page=2").json()
    assert [r["id"] for r in page1["results"]] == [1, 2, 3, 4] and "page=2" in page1["next"]
    assert [r["id"] for r in page2["results"]] == [5, 6] and page2["next"] is None
    assert api.get("/api/entries?page=9").status_code == 404
    assert api.get("/api/entries?page_size=100000").json()["count"] == 6


@pytest.mark.parametrize("query, field", [
    ("reviewed=yes", "reviewed"), ("date_from=04/10/2025", "date_from"), ("ordering=transcript", "ordering"),
    ("id_min=-1", "id_min"), ("date_to=2025-02-30", "date_to"), ("q=" + "x" * 201, "q"),
])
def test_bad_filters_answer_400_naming_the_field(api, clips, query, field):
    response = api.get(f"/api/entries?{query}")
    assert response.status_code == 400 and field in response.json()


# ---- detail, prev/next -------------------------------------------------------------------------

def test_detail_has_everything_the_page_needs(api, insert_clip):
    clip_id = insert_clip("hello there", seconds=2.0, timestamp="2025-10-04 14:23:15")
    response = api.get(f"/api/entries/{clip_id}")
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    body = response.json()
    assert body["timestamp"] == "2025-10-04T14:23:15Z" and body["timestamp_raw"] == "2025-10-04 14:23:15"
    assert body["duration_s"] == pytest.approx(2.0)
    assert set(body["metrics"]) == {"rms_dbfs", "peak_dbfs", "clipping_ratio", "silence_ratio", "snr_db"}
    assert body["audio_url"] == f"/api/entries/{clip_id}/audio" and body["peaks_url"] == f"/api/entries/{clip_id}/peaks"
    assert body["problem"] == "" and body["problem_detail"] == "" and body["edits"] == []
    assert body["prev_id"] is None and body["next_id"] is None and body["next_unreviewed_id"] is None
    # the first look cached the measurement: the list knows the duration now
    assert api.get("/api/entries").json()["results"][0]["duration_s"] == pytest.approx(2.0)


def test_detail_warns_about_quality(api, insert_clip):
    loud = np.clip(tone(2.0, amp=3.0), -1, 1)
    clip_id = insert_clip("x" * 400, blob=blob_of(loud))
    warnings = api.get(f"/api/entries/{clip_id}").json()["warnings"]
    assert any(w.startswith("clipping") for w in warnings)
    assert any("too long" in w for w in warnings)


@pytest.mark.parametrize("clip, query, prev_id, next_id, next_unreviewed", [
    (3, "", 2, 4, 4),
    (1, "", None, 2, 3),
    (6, "", 5, None, 3),             # wraps to the first unreviewed
    (4, "reviewed=0", 3, 6, 6),
    (2, "reviewed=1", 1, 5, 3),      # next unreviewed ignores reviewed=1
    (4, "ordering=-id", 5, 3, 3),
    (6, "ordering=timestamp", 4, 5, 3),
    (5, "ordering=-timestamp", None, 6, 6),
    (3, "ordering=timestamp", 2, 4, 4),  # equal timestamps break ties by id
    (4, "ordering=timestamp", 3, 6, 6),
    (3, "q=fish", 2, 4, 4),
])
def test_prev_next_follow_the_filter_and_order(api, clips, clip, query, prev_id, next_id, next_unreviewed):
    body = api.get(f"/api/entries/{clip}?{query}").json()
    assert (body["prev_id"], body["next_id"], body["next_unreviewed_id"]) == (prev_id, next_id, next_unreviewed)


def test_prev_next_walk_through_null_timestamps_in_sql_order(api, insert_clip):
    a = insert_clip("a", timestamp="2025-10-02 00:00:00")
    b = insert_clip("b", timestamp=None)
    c = insert_clip("c", timestamp="2025-10-01 00:00:00")
    d = insert_clip("d", timestamp=None)
    order = ids_of(api.get("/api/entries?ordering=timestamp"))
    assert order == [b, d, c, a]
    walked, current = [], order[0]
    while current is not None:
        walked.append(current)
        current = api.get(f"/api/entries/{current}?ordering=timestamp").json()["next_id"]
    assert walked == order
    back = api.get(f"/api/entries/{a}?ordering=timestamp").json()["prev_id"]
    assert back == c
    assert api.get(f"/api/entries/{c}?ordering=timestamp").json()["prev_id"] == d
    assert api.get(f"/api/entries/{d}?ordering=timestamp").json()["prev_id"] == b


def test_missing_clip_is_404_json(api, s2s_db):
    response = api.get("/api/entries/12345")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found" and "12345" in response.json()["detail"]


# ---- writes ------------------------------------------------------------------------------------

def test_put_with_if_match_saves_and_bumps_the_version(api, insert_clip):
    clip_id = insert_clip("helo")
    response = api.put(f"/api/entries/{clip_id}", {"transcript": " hello ", "is_reviewed": True, "review_seconds": 7},
                       format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 200, response.content
    body = response.json()
    assert response["ETag"] == '"2"' and body["version"] == 2
    assert (body["transcript"], body["original_transcript"], body["is_reviewed"]) == ("hello", "helo", True)
    assert [(e["username"], e["field"]) for e in body["edits"]] == [("alice", "is_reviewed"), ("alice", "transcript")]
    assert api.get("/api/stats").json()["avg_review_seconds"] == 7.0


def test_patch_and_body_version_work_too(api, insert_clip):
    clip_id = insert_clip("a")
    assert api.patch(f"/api/entries/{clip_id}", {"transcript": "b", "version": 1}, format="json").json()["version"] == 2
    assert api.patch(f"/api/entries/{clip_id}", {"transcript": "c", "version": 1}, format="json").status_code == 409


def test_stale_if_match_answers_409_with_the_current_state(api, insert_clip):
    clip_id = insert_clip("a")
    api.put(f"/api/entries/{clip_id}", {"transcript": "theirs"}, format="json", HTTP_IF_MATCH='"1"')
    response = api.put(f"/api/entries/{clip_id}", {"transcript": "mine"}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "conflict" and "reload" in body["detail"]
    assert body["current"]["transcript"] == "theirs" and body["current"]["version"] == 2


@pytest.mark.parametrize("payload, field, fragment", [
    ({"transcript": "   "}, "transcript", "empty"),
    ({"transcript": "x" * 2001}, "transcript", "limit is 2000"),
    ({"transcript": "ding\x07"}, "transcript", "control characters"),
    ({"transcript": None}, "transcript", "null"),
    ({"is_reviewed": "maybe"}, "is_reviewed", "valid boolean"),
    ({"review_seconds": -1}, "review_seconds", "greater than or equal"),
])
def test_invalid_input_answers_400_field_messages(api, insert_clip, payload, field, fragment):
    clip_id = insert_clip("keep")
    response = api.put(f"/api/entries/{clip_id}", payload, format="json")
    assert response.status_code == 400
    assert fragment in response.json()[field][0]
    assert api.get(f"/api/entries/{clip_id}").json()["transcript"] == "keep"


def test_bad_if_match_is_400_and_unknown_clip_is_404(api, insert_clip):
    clip_id = insert_clip("keep")
    assert "version" in api.put(f"/api/entries/{clip_id}", {"transcript": "x"}, format="json", HTTP_IF_MATCH="nope").json()
    assert api.put("/api/entries/999", {"transcript": "x"}, format="json").status_code == 404


def test_hostile_text_is_stored_and_returned_verbatim(api, insert_clip):
    clip_id = insert_clip("x")
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    assert api.put(f"/api/entries/{clip_id}", {"transcript": hostile}, format="json").json()["transcript"] == hostile
    assert api.get("/api/entries").json()["results"][0]["transcript"] == hostile


def test_review_endpoint_marks_reviewed(api, insert_clip):
    clip_id = insert_clip("x")
    response = api.post(f"/api/entries/{clip_id}/review", {"review_seconds": 3}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 200 and response.json()["is_reviewed"] is True
    assert api.post(f"/api/entries/{clip_id}/review", format="json", HTTP_IF_MATCH='"1"').status_code == 409
    assert api.get("/api/stats").json()["reviewed_today"] == 1


def test_delete_trash_restore_keeps_id_and_bytes(api, insert_clip, s2s_db):
    blob = blob_of(tone(1.0))
    clip_id = insert_clip("bye", blob=blob, timestamp="2025-10-04 14:23:15")
    response = api.delete(f"/api/entries/{clip_id}")
    assert response.status_code == 200
    trash_id = response.json()["trash_id"]
    assert response.json() == {"trash_id": trash_id, "clip_id": clip_id}
    assert api.get(f"/api/entries/{clip_id}").status_code == 404
    listed = api.get("/api/trash").json()
    assert listed["count"] == 1
    assert listed["results"][0]["clip_id"] == clip_id and listed["results"][0]["deleted_by"] == "alice"
    restored = api.post(f"/api/trash/{trash_id}/restore")
    assert restored.status_code == 200 and restored.json()["id"] == clip_id
    assert api.get(f"/api/entries/{clip_id}/audio").content == pcm_to_wav(decode_pcm(blob))
    stored = sqlite3.connect(s2s_db).execute("SELECT audio_blob FROM s2s_training_data WHERE id = ?", (clip_id,)).fetchone()
    assert stored[0] == blob
    assert api.post(f"/api/trash/{trash_id}/restore").status_code == 404


def test_restore_into_a_taken_id_is_409(api, insert_clip, s2s_db):
    clip_id = insert_clip("a")
    trash_id = api.delete(f"/api/entries/{clip_id}").json()["trash_id"]
    conn = sqlite3.connect(s2s_db)
    conn.execute("INSERT INTO s2s_training_data (id, transcript) VALUES (?, 'other')", (clip_id,))
    conn.commit()
    conn.close()
    response = api.post(f"/api/trash/{trash_id}/restore")
    assert response.status_code == 409 and response.json()["error"] == "id_taken"


def test_purge_one_and_many(api, insert_clip):
    trash = [api.delete(f"/api/entries/{insert_clip(str(i))}").json()["trash_id"] for i in range(3)]
    assert api.delete(f"/api/trash/{trash[0]}").json() == {"purged": 1}
    assert api.delete(f"/api/trash/{trash[0]}").status_code == 404
    assert api.post("/api/trash/purge", {"older_than_days": 1}, format="json").json() == {"purged": 0}
    assert api.post("/api/trash/purge", {"older_than_days": -1}, format="json").status_code == 400
    assert api.post("/api/trash/purge", {}, format="json").json() == {"purged": 2}
    assert api.get("/api/trash").json()["count"] == 0


# ---- audio -------------------------------------------------------------------------------------

def test_wav_is_the_decoded_clip_with_length_ranges_and_etag(api, insert_clip):
    blob = blob_of(tone(1.0))
    clip_id = insert_clip("x", blob=blob)
    wav = pcm_to_wav(decode_pcm(blob))
    response = api.get(f"/api/entries/{clip_id}/audio")
    assert response.status_code == 200 and response.content == wav
    assert response["Content-Type"] == "audio/wav" and response["Content-Length"] == str(len(wav))
    assert response["Accept-Ranges"] == "bytes"
    etag = response["ETag"]

    part = api.get(f"/api/entries/{clip_id}/audio", HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part.content == wav[100:200]
    assert part["Content-Range"] == f"bytes 100-199/{len(wav)}" and part["Content-Length"] == "100"
    tail = api.get(f"/api/entries/{clip_id}/audio", HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206 and tail.content == wav[-10:]
    assert tail["Content-Range"] == f"bytes {len(wav) - 10}-{len(wav) - 1}/{len(wav)}"
    rest = api.get(f"/api/entries/{clip_id}/audio", HTTP_RANGE=f"bytes={len(wav) - 5}-")
    assert rest.status_code == 206 and rest.content == wav[-5:]
    clamp = api.get(f"/api/entries/{clip_id}/audio", HTTP_RANGE=f"bytes=0-{len(wav) * 2}")
    assert clamp.status_code == 206 and clamp.content == wav
    beyond = api.get(f"/api/entries/{clip_id}/audio", HTTP_RANGE=f"bytes={len(wav)}-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(wav)}"
    assert api.get(f"/api/entries/{clip_id}/audio", HTTP_RANGE="bytes=9-2").status_code == 200  # invalid: ignored
    assert api.get(f"/api/entries/{clip_id}/audio", HTTP_RANGE="bytes=0-1", HTTP_IF_RANGE='"old"').status_code == 200

    cached = api.get(f"/api/entries/{clip_id}/audio", HTTP_IF_NONE_MATCH=etag)
    assert cached.status_code == 304 and cached.content == b"" and cached["ETag"] == etag
    api.put(f"/api/entries/{clip_id}", {"transcript": "edited"}, format="json")
    assert api.get(f"/api/entries/{clip_id}/audio", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_other_formats_decode_back_to_the_same_length(api, insert_clip):
    clip_id = insert_clip("x", seconds=1.0)
    flac = api.get(f"/api/entries/{clip_id}/audio?format=flac")
    assert flac.status_code == 200 and flac["Content-Type"] == "audio/flac"
    samples, rate = sf.read(io.BytesIO(flac.content))
    assert rate == 16000 and len(samples) == 16000
    assert api.get(f"/api/entries/{clip_id}/audio?format=ogg").status_code == 200
    mp3 = api.get(f"/api/entries/{clip_id}/audio?format=mp3")
    assert mp3.status_code in (200, 415)
    bad = api.get(f"/api/entries/{clip_id}/audio?format=aiff")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_format" and "wav" in bad.json()["detail"]


def test_peaks_summarise_the_waveform(api, insert_clip):
    clip_id = insert_clip("x", seconds=1.0)
    body = api.get(f"/api/entries/{clip_id}/peaks?width=50").json()
    assert body["width"] == 50 and len(body["peaks"]) == 50 and body["duration_s"] == pytest.approx(1.0)
    assert all(lo <= hi for lo, hi in body["peaks"]) and max(hi for _, hi in body["peaks"]) > 0.2
    assert api.get(f"/api/entries/{clip_id}/peaks?width=0").status_code == 400


# ---- bad rows ----------------------------------------------------------------------------------

BAD_ROWS = {
    "corrupt blob": (dict(blob=b"\x00garbage, not zlib"), "not_zlib"),
    "truncated blob": (dict(blob=zlib.compress(np.zeros(800, "<i2").tobytes())[:20]), "truncated"),
    "null blob": (dict(blob=None), "null_blob"),
    "odd byte count": (dict(blob=zlib.compress(b"\x01\x02\x03")), "odd_length"),
    "null transcript": (dict(transcript=None), "null_transcript"),
    "null timestamp": (dict(timestamp=None), "null_timestamp"),
    "odd timestamp": (dict(timestamp="last tuesday"), "bad_timestamp"),
    "numeric timestamp": (dict(timestamp=1728052995), "bad_timestamp"),
    "impossible date": (dict(timestamp="2025-13-45 10:00:00"), "bad_timestamp"),
}
AUDIO_CODES = {"not_zlib", "truncated", "null_blob", "odd_length"}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_a_bad_row_never_causes_a_500(api, insert_clip, kind):
    kwargs, code = BAD_ROWS[kind]
    good = insert_clip("fine")
    bad = insert_clip(**{"transcript": "bad row", **kwargs})
    listed = {r["id"]: r for r in api.get("/api/entries").json()["results"]}
    assert listed[good]["problem"] == ""
    if code not in AUDIO_CODES - {"null_blob"}:  # decode problems are known once the clip is decoded
        assert listed[bad]["problem"] == code
    detail = api.get(f"/api/entries/{bad}")
    assert detail.status_code == 200
    assert detail.json()["problem"] == code and detail.json()["problem_detail"]
    assert detail.json()["audio_problem"] == (code if code in AUDIO_CODES else "")
    assert api.get(f"/api/entries/{bad}?ordering=timestamp").status_code == 200
    assert api.get("/api/entries?has_problem=1").json()["results"][0]["id"] == bad
    assert ids_of(api.get("/api/entries?has_problem=0")) == [good]
    assert api.get("/api/stats").status_code == 200
    for endpoint in ("audio", "peaks"):
        response = api.get(f"/api/entries/{bad}/{endpoint}")
        if code in AUDIO_CODES:
            assert response.status_code == 422
            assert response.json()["error"] == "bad_audio" and response.json()["code"] == code
            assert str(bad) in response.json()["detail"]
        else:
            assert response.status_code == 200
    trash_id = api.delete(f"/api/entries/{bad}").json()["trash_id"]
    assert api.get("/api/trash").status_code == 200
    assert api.post(f"/api/trash/{trash_id}/restore").json()["problem"] == code
    assert api.put(f"/api/entries/{bad}", {"transcript": "fixed"}, format="json").status_code == 200


def test_hostile_and_binary_transcripts_are_listed_safely(api, insert_clip):
    insert_clip('<script>alert(1)</script>')
    insert_clip(b"\xffbinary transcript")
    results = api.get("/api/entries").json()["results"]
    assert results[0]["transcript"] == "<script>alert(1)</script>"
    assert "binary transcript" in results[1]["transcript"]


# ---- stats, export -----------------------------------------------------------------------------

def test_stats_numbers(api, clips, alice):
    for clip_id in clips:
        api.get(f"/api/entries/{clip_id}")  # measure: 2 s each
    api.post(f"/api/entries/{clips[2]}/review", {"review_seconds": 10}, format="json")
    api.put(f"/api/entries/{clips[3]}", {"transcript": "x", "review_seconds": 20}, format="json")
    api.put(f"/api/entries/{clips[3]}", {"transcript": "y", "review_seconds": 10}, format="json")
    stats = api.get("/api/stats").json()
    assert {k: stats[k] for k in ("total", "reviewed", "unreviewed", "trained", "reviewed_untrained", "scanned", "unscanned")} == {
        "total": 6, "reviewed": 4, "unreviewed": 2, "trained": 1, "reviewed_untrained": 3, "scanned": 6, "unscanned": 0}
    assert stats["hours"] == pytest.approx(12 / 3600, abs=1e-4)
    assert stats["reviewed_hours"] == pytest.approx(8 / 3600, abs=1e-4)
    assert stats["avg_review_seconds"] == 20.0  # (10 + 30) / 2 clips
    assert stats["reviewed_today"] == 1 and stats["per_day"][-1]["count"] == 1
    assert stats["per_session"]["count"] == 1 and stats["per_session"]["last"]["entries"] == 3


def test_export_zips_manifest_and_wavs_for_the_filter(api, clips, insert_clip):
    bad = insert_clip("broken", blob=b"nope", is_reviewed=1)
    response = api.get("/api/export?reviewed=1")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["X-Export-Clips"] == "4"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    manifest = [json.loads(line) for line in archive.read("manifest.jsonl").decode().splitlines()]
    assert [m["id"] for m in manifest] == [1, 2, 5]
    assert manifest[0]["audio_filepath"] == "audio/1.wav" and manifest[0]["is_reviewed"] is True
    assert manifest[1]["duration"] == 2.0 and manifest[1]["text"]
    (problem,) = [json.loads(line) for line in archive.read("problems.jsonl").decode().splitlines()]
    assert problem["id"] == bad and problem["problem"] == "not_zlib"
    samples, rate = sf.read(io.BytesIO(archive.read("audio/2.wav")))
    assert rate == 16000 and len(samples) == 32000
    assert sorted(n for n in archive.namelist() if n.startswith("audio/")) == ["audio/1.wav", "audio/2.wav", "audio/5.wav"]


def test_export_formats_and_a_bad_format(api, clips):
    csv_zip = zipfile.ZipFile(io.BytesIO(b"".join(api.get("/api/export?format=csv&reviewed=1").streaming_content)))
    header, *rows = csv_zip.read("metadata.csv").decode().splitlines()
    assert header.startswith("file_name,text,duration") and len(rows) == 3
    hf_zip = zipfile.ZipFile(io.BytesIO(b"".join(api.get("/api/export?format=hf").streaming_content)))
    assert {"state.json", "dataset_info.json", "data-00000.arrow"} <= set(hf_zip.namelist())
    bad = api.get("/api/export?format=xls")
    assert bad.status_code == 400 and "jsonl" in bad.json()["detail"]


# ---- auth, CSRF, schema, lock ------------------------------------------------------------------

ENDPOINTS = [
    ("get", "/api/entries"), ("get", "/api/entries/1"), ("put", "/api/entries/1"), ("patch", "/api/entries/1"),
    ("delete", "/api/entries/1"), ("post", "/api/entries/1/review"), ("get", "/api/entries/1/audio"),
    ("get", "/api/entries/1/peaks"), ("get", "/api/stats"), ("get", "/api/export"), ("get", "/api/trash"),
    ("post", "/api/trash/1/restore"), ("delete", "/api/trash/1"), ("post", "/api/trash/purge"),
]


@pytest.mark.parametrize("method, url", ENDPOINTS)
def test_anonymous_is_refused_everywhere(bob, clips, method, url):
    response = getattr(bob, method)(url)
    assert response.status_code in (401, 403)
    assert "credentials" in response.json()["detail"]


def test_token_auth_works(clips, alice):
    token = Token.objects.create(user=alice)
    client = APIClient()
    wrong = client.get("/api/entries", HTTP_AUTHORIZATION="Token wrong")
    assert wrong.status_code in (401, 403) and "Invalid token" in wrong.json()["detail"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/entries").json()["count"] == 6
    assert client.put("/api/entries/1", {"transcript": "by token"}, format="json").status_code == 200


def test_session_writes_need_the_csrf_token(clips, alice):
    client = APIClient(enforce_csrf_checks=True)
    client.get("/accounts/login/")
    csrf = client.cookies["csrftoken"].value
    assert client.login(username="alice", password="alice-pass-123")
    assert client.get("/api/entries").status_code == 200
    refused = client.put("/api/entries/1", {"transcript": "no token"}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert client.delete("/api/entries/1").status_code == 403
    ok = client.put("/api/entries/1", {"transcript": "with token"}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert ok.status_code == 200 and ok.json()["transcript"] == "with token"


def test_openapi_schema_lists_every_endpoint(api, s2s_db):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    for path in ("/api/entries", "/api/entries/{clip_id}", "/api/entries/{clip_id}/audio", "/api/entries/{clip_id}/peaks",
                 "/api/entries/{clip_id}/review", "/api/stats", "/api/export", "/api/trash",
                 "/api/trash/{trash_id}/restore", "/api/trash/{trash_id}", "/api/trash/purge"):
        assert path in paths, path
    assert any(p["name"] == "reviewed" for p in paths["/api/entries"]["get"]["parameters"])
    assert api.get("/api/docs/").status_code == 200


def test_a_locked_database_answers_503_json_and_saves_nothing(api, insert_clip, s2s_db, settings):
    clip_id = insert_clip("before")
    settings.S2S_WRITE_BACKOFF_S = 0.01
    connections["s2s"].ensure_connection()
    connections["s2s"].cursor().execute("PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(s2s_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        response = api.put(f"/api/entries/{clip_id}", {"transcript": "after"}, format="json")
        reading = api.get(f"/api/entries/{clip_id}")  # readers are not blocked in WAL mode
        trash = api.delete(f"/api/entries/{clip_id}")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.json()["error"] == "database_locked" and "retry" in response.json()["detail"]
    assert trash.status_code == 503
    assert reading.status_code == 200 and reading.json()["transcript"] == "before"
    assert api.put(f"/api/entries/{clip_id}", {"transcript": "after"}, format="json").status_code == 200


def test_no_query_per_row_in_lists(api, insert_clip):
    for i in range(30):
        insert_clip(f"clip {i}", seconds=0.2)
    with CaptureQueriesContext(connections["s2s"]) as small:
        api.get("/api/entries?page_size=5")
    with CaptureQueriesContext(connections["s2s"]) as big:
        api.get("/api/entries?page_size=30")
    assert len(big.captured_queries) == len(small.captured_queries) <= 8
    assert not any(re.search(r"\bLIMIT 1\b", q["sql"]) for q in big.captured_queries)


async def test_export_streams_under_asgi_too(insert_clip, alice):
    """Under daphne the zip is fed chunk by chunk, not collected in memory first."""
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    for i in range(3):
        await sync_to_async(insert_clip)(f"c{i}", seconds=0.5)
    client = AsyncClient()
    await client.aforce_login(alice)
    try:
        response = await client.get("/api/export")
        assert response.status_code == 200 and response.is_async
        body = b"".join([chunk async for chunk in response.streaming_content])
    finally:
        await sync_to_async(connections.close_all)()  # the handler's thread opened its own
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert sorted(archive.namelist()) == ["audio/1.wav", "audio/2.wav", "audio/3.wav", "manifest.jsonl"]
