"""The live app keeps inserting while reviewers save: nothing may be lost and nothing may 500."""
import sqlite3
import threading
import time

from django.db import connections
from rest_framework.test import APIClient

from review.models import ClipEdit, ClipMeta
from tests.conftest import S2S, blob_of, tone

pytestmark = S2S


def live_app_writer(path, count, errors, stop, committed):
    """Like the live app: plain sqlite3, one short transaction per captured utterance."""
    blob = blob_of(tone(0.3))
    conn = sqlite3.connect(path, timeout=5)
    try:
        for i in range(count):
            if stop.is_set():
                break
            try:
                conn.execute("INSERT INTO s2s_training_data (transcript, audio_blob) VALUES (?, ?)", (f"live {i}", blob))
                conn.commit()
                committed.append(i)
            except sqlite3.Error as e:  # pragma: no cover - reported by the assertion below
                errors.append(repr(e))
            time.sleep(0.002)
    finally:
        conn.close()


def reviewer(user, clip_ids, rounds, statuses, lock):
    client = APIClient()
    client.force_authenticate(user)
    try:
        for r in range(rounds):
            for clip_id in clip_ids:
                while True:
                    version = client.get(f"/api/entries/{clip_id}").json()["version"]
                    response = client.put(f"/api/entries/{clip_id}", {"transcript": f"edit {r}", "review_seconds": 1},
                                          format="json", HTTP_IF_MATCH=f'"{version}"')
                    with lock:
                        statuses.append((clip_id, response.status_code))
                    if response.status_code in (200, 409):
                        break
                    time.sleep(0.05)  # 503: the file was busy, try again like the page does
    finally:
        connections.close_all()


def test_edits_survive_a_concurrent_live_writer_and_a_second_reviewer(insert_clip, s2s_db, alice, django_user_model):
    carol = django_user_model.objects.create_user("carol", password="carol-pass-123")
    ids = [insert_clip(f"clip {i}", seconds=0.3) for i in range(6)]
    errors, statuses, committed, lock, stop = [], [], [], threading.Lock(), threading.Event()
    writer = threading.Thread(target=live_app_writer, args=(s2s_db, 400, errors, stop, committed))
    # Alice and Carol each own three clips and share ids[0], where one of them must get a 409.
    threads = [
        threading.Thread(target=reviewer, args=(alice, ids[:3], 4, statuses, lock)),
        threading.Thread(target=reviewer, args=(carol, [ids[0], *ids[3:]], 4, statuses, lock)),
    ]
    writer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    writer.join(timeout=60)

    assert errors == []
    assert not any(code >= 500 and code != 503 for _, code in statuses), statuses
    assert {code for _, code in statuses} <= {200, 409, 503}
    conn = sqlite3.connect(s2s_db)
    for clip_id in ids:
        saved = sum(1 for c, code in statuses if c == clip_id and code == 200)
        meta = ClipMeta.objects.get(clip_id=clip_id)
        assert meta.version == 1 + saved and meta.review_seconds == saved
        if clip_id != ids[0]:  # one owner: every save is a real change, in order
            assert saved == 4
            assert ClipEdit.objects.filter(clip_id=clip_id, field="transcript").count() == 4
            assert conn.execute("SELECT transcript FROM s2s_training_data WHERE id = ?", (clip_id,)).fetchone()[0] == "edit 3"
    live = conn.execute("SELECT COUNT(*) FROM s2s_training_data WHERE transcript LIKE 'live %'").fetchone()[0]
    assert live == len(committed) > 0  # every insert the live app committed is there
    final = APIClient()
    final.force_authenticate(alice)
    assert final.get("/api/stats").json()["total"] == len(ids) + live
