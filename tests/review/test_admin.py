"""Django admin over the capture file: no blobs on the changelist, every change via the services."""
import sqlite3

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from review.models import ClipEdit, ClipMeta, TrashedClip
from tests.conftest import S2S

pytestmark = S2S


@pytest.fixture
def admin_client_s2s(django_user_model):
    user = django_user_model.objects.create_superuser("root", "", "root-pass-123")
    client = Client()
    client.force_login(user)
    return client


def flags(path, clip_id):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT transcript, is_reviewed, is_trained FROM s2s_training_data WHERE id = ?", (clip_id,)).fetchone()
    finally:
        conn.close()


def test_changelist_shows_clips_without_loading_blobs(admin_client_s2s, insert_clip):
    insert_clip("first <b>clip</b>", is_reviewed=1)
    insert_clip("second clip", timestamp="not a date")
    insert_clip("third", timestamp="2025-13-45 10:00:00")
    with CaptureQueriesContext(connections["s2s"]) as ctx:
        response = admin_client_s2s.get("/admin/review/clip/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "second clip" in page and "not a date" in page and "2025-13-45 10:00:00" in page
    assert "first &lt;b&gt;clip&lt;/b&gt;" in page
    assert ctx.captured_queries and not any("audio_blob" in q["sql"] for q in ctx.captured_queries)


def test_changelist_filters_and_search(admin_client_s2s, insert_clip):
    insert_clip("alpha reviewed", is_reviewed=1)
    insert_clip("beta open")
    reviewed = admin_client_s2s.get("/admin/review/clip/?reviewed=1").content.decode()
    assert "alpha reviewed" in reviewed and "beta open" not in reviewed
    unreviewed = admin_client_s2s.get("/admin/review/clip/?reviewed=0").content.decode()
    assert "beta open" in unreviewed and "alpha reviewed" not in unreviewed
    found = admin_client_s2s.get("/admin/review/clip/?q=beta").content.decode()
    assert "beta open" in found and "alpha reviewed" not in found


@pytest.mark.parametrize("action, expected", [
    ("mark_reviewed", [(1, 1), (1, 1)]), ("mark_unreviewed", [(0, 1), (0, 1)]), ("mark_untrained", [(0, 0), (1, 0)]),
])
def test_bulk_flag_actions_go_through_the_service(admin_client_s2s, insert_clip, s2s_db, action, expected):
    ids = [insert_clip(f"c{i}", is_reviewed=i % 2, is_trained=1) for i in range(3)]
    response = admin_client_s2s.post("/admin/review/clip/", {"action": action, "_selected_action": ids[:2]}, follow=True)
    assert response.status_code == 200
    assert [flags(s2s_db, i)[1:] for i in ids[:2]] == expected
    assert flags(s2s_db, ids[2])[1:] == (0, 1)
    assert ClipEdit.objects.filter(clip_id__in=ids[:2], username="root").exists()


def test_move_to_trash_action_and_restore_from_the_trash_admin(admin_client_s2s, insert_clip, s2s_db):
    ids = [insert_clip(f"c{i}") for i in range(2)]
    admin_client_s2s.post("/admin/review/clip/", {"action": "move_to_trash", "_selected_action": ids}, follow=True)
    assert flags(s2s_db, ids[0]) is None and TrashedClip.objects.count() == 2
    assert "c0" in admin_client_s2s.get("/admin/review/trashedclip/").content.decode()
    trash_ids = list(TrashedClip.objects.values_list("id", flat=True))
    admin_client_s2s.post("/admin/review/trashedclip/", {"action": "restore", "_selected_action": trash_ids[:1]}, follow=True)
    assert TrashedClip.objects.count() == 1
    admin_client_s2s.post("/admin/review/trashedclip/", {"action": "purge", "_selected_action": trash_ids[1:]}, follow=True)
    assert TrashedClip.objects.count() == 0
    assert sum(flags(s2s_db, i) is not None for i in ids) == 1


def test_change_form_edit_keeps_history(admin_client_s2s, insert_clip, s2s_db):
    clip_id = insert_clip("helo")
    url = f"/admin/review/clip/{clip_id}/change/"
    page = admin_client_s2s.get(url)
    assert page.status_code == 200 and f"/api/entries/{clip_id}/audio" in page.content.decode()
    response = admin_client_s2s.post(url, {"transcript": "hello"})
    assert response.status_code == 302
    assert flags(s2s_db, clip_id)[0] == "hello"
    assert ClipMeta.objects.get(clip_id=clip_id).original_transcript == "helo"
    assert ClipEdit.objects.filter(clip_id=clip_id, username="root", new_value="hello").exists()
    bad = admin_client_s2s.post(url, {"transcript": "bell\x07"})
    assert bad.status_code == 200 and "control characters" in bad.content.decode()
    assert flags(s2s_db, clip_id)[0] == "hello"


def test_inline_list_edit_goes_through_the_service(admin_client_s2s, insert_clip, s2s_db):
    a, b = insert_clip("aa"), insert_clip("bb")
    data = {
        "form-TOTAL_FORMS": "2", "form-INITIAL_FORMS": "2", "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(b), "form-0-transcript": "bb fixed", "form-1-id": str(a), "form-1-transcript": "aa", "_save": "Save",
    }
    response = admin_client_s2s.post("/admin/review/clip/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert flags(s2s_db, b)[0] == "bb fixed" and flags(s2s_db, a)[0] == "aa"
    assert list(ClipEdit.objects.values_list("clip_id", "old_value", "new_value")) == [(b, "bb", "bb fixed")]


def test_edit_history_is_read_only(admin_client_s2s, insert_clip):
    clip_id = insert_clip("x")
    admin_client_s2s.post(f"/admin/review/clip/{clip_id}/change/", {"transcript": "y"})
    page = admin_client_s2s.get("/admin/review/clipedit/")
    assert page.status_code == 200 and "root" in page.content.decode()
    edit = ClipEdit.objects.get()
    assert admin_client_s2s.post(f"/admin/review/clipedit/{edit.id}/delete/").status_code == 403
    assert admin_client_s2s.get("/admin/review/clip/add/").status_code == 403
