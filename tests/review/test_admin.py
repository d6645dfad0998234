"""Django admin over the capture file: no blobs on the changelist, every change via the services."""
import io
import re
import sqlite3
import zipfile

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from review import services
from review.models import ClipEdit, ClipMeta, TrashedClip
from tests.conftest import S2S

pytestmark = S2S


def flags(path, clip_id):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT transcript, is_reviewed, is_trained FROM s2s_training_data WHERE id = ?", (clip_id,)).fetchone()
    finally:
        conn.close()


def reads_blob(sql: str) -> bool:
    """`typeof(audio_blob)` reads only the record header (NULL or not), never the blob's pages."""
    return "audio_blob" in sql.replace("typeof(audio_blob)", "")


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
    assert ctx.captured_queries and not any(reads_blob(q["sql"]) for q in ctx.captured_queries)


def test_changelist_rows_show_duration_flags_problem_and_a_player(admin_client_s2s, insert_clip, alice):
    ok = insert_clip("fine clip", is_reviewed=1, is_trained=1, seconds=1.5)
    silent = insert_clip("no audio", blob=None)
    services.clip_update(ok, alice, None, transcript="fine clip!")  # version 2
    admin_client_s2s.get(f"/api/entries/{ok}")  # caches the duration, as opening a clip does
    page = admin_client_s2s.get("/admin/review/clip/").content.decode()
    assert "1.5 s" in page and "null blob" in page
    assert f'<audio controls preload="none" src="/api/entries/{ok}/audio"></audio>' in page
    assert f'name="version-{ok}" value="2"' in page and f'name="version-{silent}" value="1"' in page
    assert page.index(f"/admin/review/clip/{silent}/change/") < page.index(f"/admin/review/clip/{ok}/change/")  # newest first


def test_changelist_date_problem_and_ordering(admin_client_s2s, insert_clip):
    from django.utils import timezone

    today = timezone.now().strftime("%Y-%m-%d %H:%M:%S")
    insert_clip("old clip", timestamp="2020-01-01 10:00:00")
    insert_clip("new clip", timestamp=today)
    insert_clip("   ", timestamp=today)
    insert_clip("broken audio", blob=b"not zlib", timestamp="2019-05-05 10:00:00")
    recent = admin_client_s2s.get("/admin/review/clip/?captured=7d").content.decode()
    assert "new clip" in recent and "old clip" not in recent
    empty = admin_client_s2s.get("/admin/review/clip/?problem=empty_transcript").content.decode()
    assert "/admin/review/clip/3/change/" in empty and "new clip" not in empty
    assert "broken audio" not in admin_client_s2s.get("/admin/review/clip/?problem=not_zlib").content.decode()
    admin_client_s2s.get("/api/entries/4")  # opening (or scanclips) finds out the audio is bad
    assert "broken audio" in admin_client_s2s.get("/admin/review/clip/?problem=not_zlib").content.decode()
    clean = admin_client_s2s.get("/admin/review/clip/?problem=none").content.decode()
    assert "old clip" in clean and "broken audio" not in clean and "/admin/review/clip/3/change/" not in clean
    by_time = admin_client_s2s.get("/admin/review/clip/?o=8").content.decode()  # column 8: timestamp, ascending
    assert by_time.index("broken audio") < by_time.index("old clip") < by_time.index("new clip")


def test_a_plain_orm_list_filter_still_narrows_the_list(admin_client_s2s, insert_clip, monkeypatch):
    """Filters added later as ordinary SimpleListFilters (ORM only) must not be silently ignored."""
    from django.contrib import admin as django_admin

    from review.admin import ClipAdmin

    class StartsWithX(django_admin.SimpleListFilter):
        title, parameter_name = "starts with x", "x"

        def lookups(self, request, model_admin):
            return [("1", "yes")]

        def queryset(self, request, queryset):
            return queryset.filter(transcript__startswith="x") if self.value() == "1" else queryset

    monkeypatch.setattr(ClipAdmin, "list_filter", [*ClipAdmin.list_filter, StartsWithX])
    insert_clip("xylophone", is_reviewed=1)
    insert_clip("xenon")
    insert_clip("apple", is_reviewed=1)
    page = admin_client_s2s.get("/admin/review/clip/?x=1&reviewed=1").content.decode()
    assert "xylophone" in page and "xenon" not in page and "apple" not in page and "1 clip" in page


def test_changelist_filters_and_search(admin_client_s2s, insert_clip):
    insert_clip("alpha reviewed", is_reviewed=1)
    insert_clip("beta open")
    reviewed = admin_client_s2s.get("/admin/review/clip/?reviewed=1").content.decode()
    assert "alpha reviewed" in reviewed and "beta open" not in reviewed
    unreviewed = admin_client_s2s.get("/admin/review/clip/?reviewed=0").content.decode()
    assert "beta open" in unreviewed and "alpha reviewed" not in unreviewed
    found = admin_client_s2s.get("/admin/review/clip/?q=beta").content.decode()
    assert "beta open" in found and "alpha reviewed" not in found


def act(client, action, ids, *, confirm=True, url="/admin/review/clip/", **fields):
    """Click an action on the changelist, then (confirm=True) "Apply" on its confirmation page."""
    data = {"action": action, "_selected_action": ids, "index": "0", **fields}
    page = client.post(url, data)
    assert page.status_code == 200, page.content.decode()[:500]
    if not confirm:
        return page
    return client.post(url, {**data, "confirm_step": "apply"}, follow=True)


@pytest.mark.parametrize("action, expected, summary", [
    ("mark_reviewed", [(1, 1), (1, 1)], "1 of the 2 selected clips will be marked reviewed; 1 already are"),
    ("mark_unreviewed", [(0, 1), (0, 1)], "1 of the 2 selected clips will be marked unreviewed; 1 already are"),
    ("mark_untrained", [(0, 0), (1, 0)], "2 of the 2 selected clips will be marked not used in training; 0 already are"),
])
def test_bulk_flag_actions_confirm_then_go_through_the_service(admin_client_s2s, insert_clip, s2s_db, action, expected, summary):
    ids = [insert_clip(f"c{i}", is_reviewed=i % 2, is_trained=1) for i in range(3)]
    before = [flags(s2s_db, i) for i in ids]
    page = act(admin_client_s2s, action, ids[:2], confirm=False).content.decode()
    assert summary in page and "#1: c0" in page and "edit history" in page
    assert [flags(s2s_db, i) for i in ids] == before and not ClipEdit.objects.exists()  # nothing yet

    response = act(admin_client_s2s, action, ids[:2])
    assert response.status_code == 200 and "clips marked" in response.content.decode()
    assert [flags(s2s_db, i)[1:] for i in ids[:2]] == expected
    assert flags(s2s_db, ids[2])[1:] == (0, 1)
    column = "is_trained" if action == "mark_untrained" else "is_reviewed"
    changed = [i for i, (was, now) in enumerate(zip(before[:2], expected, strict=True)) if was[1:] != now]
    assert sorted(ClipEdit.objects.filter(field=column, username="root").values_list("clip_id", flat=True)) == [ids[i] for i in changed]


def test_an_action_on_all_filtered_clips_keeps_the_filter(admin_client_s2s, insert_clip, s2s_db):
    ids = [insert_clip(f"c{i}", is_reviewed=i % 2) for i in range(6)]
    url = "/admin/review/clip/?reviewed=0"
    page = act(admin_client_s2s, "mark_reviewed", [ids[0]], confirm=False, url=url, select_across="1").content.decode()
    assert "3 of the 3 selected clips will be marked reviewed" in page
    assert 'href="/admin/review/clip/?reviewed=0" class="button cancel-link"' in page  # Cancel keeps the filter
    act(admin_client_s2s, "mark_reviewed", [ids[0]], url=url, select_across="1")
    assert all(flags(s2s_db, i)[1] == 1 for i in ids)
    assert ClipEdit.objects.filter(field="is_reviewed").count() == 3


def test_move_to_trash_action_and_restore_from_the_trash_admin(admin_client_s2s, insert_clip, s2s_db):
    ids = [insert_clip(f"c{i}") for i in range(2)]
    page = act(admin_client_s2s, "move_to_trash", ids, confirm=False).content.decode()
    assert "2 clips will leave the list and go to the trash" in page and flags(s2s_db, ids[0]) is not None
    act(admin_client_s2s, "move_to_trash", ids)
    assert flags(s2s_db, ids[0]) is None and TrashedClip.objects.count() == 2
    assert ClipEdit.objects.filter(field="trashed").count() == 2
    assert "c0" in admin_client_s2s.get("/admin/review/trashedclip/").content.decode()
    trash_ids = list(TrashedClip.objects.values_list("id", flat=True))
    admin_client_s2s.post("/admin/review/trashedclip/", {"action": "restore", "_selected_action": trash_ids[:1]}, follow=True)
    assert TrashedClip.objects.count() == 1 and ClipEdit.objects.filter(field="restored").count() == 1
    trash = "/admin/review/trashedclip/"
    page = act(admin_client_s2s, "purge", trash_ids[1:], confirm=False, url=trash).content.decode()
    assert "1 trashed clips will be deleted for good" in page and TrashedClip.objects.count() == 1
    act(admin_client_s2s, "purge", trash_ids[1:], url=trash)
    assert TrashedClip.objects.count() == 0
    assert sum(flags(s2s_db, i) is not None for i in ids) == 1


def test_export_action_streams_a_zip_and_records_it(admin_client_s2s, insert_clip):
    ids = [insert_clip(f"c{i}", is_trained=1) for i in range(3)]
    page = act(admin_client_s2s, "export_selected", ids[:2], confirm=False).content.decode()
    assert "2 clips will be written to a zip" in page and 'name="format"' in page
    response = act(admin_client_s2s, "export_selected", ids[:2], format="csv")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    header, *rows = archive.read("metadata.csv").decode().splitlines()
    assert [r.split(",")[1] for r in rows] == ["c0", "c1"] and sorted(archive.namelist())[0] == "audio/1.wav"
    assert sorted(ClipEdit.objects.filter(field="exported", new_value="csv").values_list("clip_id", flat=True)) == ids[:2]


def rewrite(client, action, ids, **form):
    """Open the action's form, preview it, and return (preview page, its plan token)."""
    act(client, action, ids, confirm=False)
    preview = client.post("/admin/review/clip/", {"action": action, "_selected_action": ids, "index": "0",
                                                   "confirm_step": "preview", **form})
    assert preview.status_code == 200
    page = preview.content.decode()
    token = re.search(r'name="plan" value="([0-9a-f]+)"', page)
    return page, token.group(1) if token else None


def apply_plan(client, action, ids, token, **form):
    return client.post("/admin/review/clip/", {"action": action, "_selected_action": ids, "index": "0",
                                               "confirm_step": "apply", "plan": token, **form}, follow=True)


def test_find_and_replace_previews_every_change_then_applies_them(admin_client_s2s, insert_clip, s2s_db):
    ids = [insert_clip("teh cat"), insert_clip("Teh dog and teh cat"), insert_clip("no match"), insert_clip("teh")]
    page, token = rewrite(admin_client_s2s, "find_replace", ids, find="teh", replace="the", ignore_case="on")
    assert "Preview: 3 changes" in page and "the dog and the cat" in page and "Teh dog and teh cat" in page
    assert "3 of the 4 selected transcripts will change" in page and "1 stay as they are" in page
    assert flags(s2s_db, ids[0])[0] == "teh cat" and not ClipEdit.objects.exists()  # a preview writes nothing

    done = apply_plan(admin_client_s2s, "find_replace", ids, token, find="teh", replace="the", ignore_case="on")
    assert "3 transcripts changed" in done.content.decode()
    assert [flags(s2s_db, i)[0] for i in ids] == ["the cat", "the dog and the cat", "no match", "the"]
    assert ClipMeta.objects.get(clip_id=ids[1]).original_transcript == "Teh dog and teh cat"
    assert sorted(ClipEdit.objects.filter(field="transcript").values_list("clip_id", flat=True)) == [ids[0], ids[1], ids[3]]


def test_regex_replace_uses_groups_and_skips_results_that_fail_validation(admin_client_s2s, insert_clip, s2s_db):
    ids = [insert_clip("call me at 3 30"), insert_clip("um")]
    form = {"find": r"(\d+) (\d+)", "replace": r"\1:\2", "use_regex": "on"}
    page, token = rewrite(admin_client_s2s, "find_replace", ids, **form)
    assert "call me at 3:30" in page and "Preview: 1 change" in page
    apply_plan(admin_client_s2s, "find_replace", ids, token, **form)
    assert [flags(s2s_db, i)[0] for i in ids] == ["call me at 3:30", "um"]

    page, token = rewrite(admin_client_s2s, "find_replace", ids, find="um", replace="")
    assert "skipped: Transcript is empty" in page and "Apply these changes" not in page
    assert flags(s2s_db, ids[1])[0] == "um"


@pytest.mark.parametrize("form, message", [
    ({"find": "(unclosed", "use_regex": "on"}, "Not a valid regular expression"),
    ({"find": "(a)", "replace": r"\9", "use_regex": "on"}, "The replacement is not valid"),
    ({"find": "(a|aa)+$", "use_regex": "on"}, "catastrophic backtracking"),
])
def test_hostile_or_broken_patterns_are_refused_with_a_message(admin_client_s2s, insert_clip, s2s_db, form, message):
    clip_id = insert_clip("a" * 40 + "!")
    page, token = rewrite(admin_client_s2s, "find_replace", [clip_id], **form)
    assert message in page and token is None and "Apply these changes" not in page
    assert flags(s2s_db, clip_id)[0] == "a" * 40 + "!"


def test_a_clip_edited_after_the_preview_is_not_overwritten(admin_client_s2s, insert_clip, s2s_db, alice):
    ids = [insert_clip("colour one"), insert_clip("colour two")]
    _, token = rewrite(admin_client_s2s, "find_replace", ids, find="colour", replace="color")
    services.clip_update(ids[1], alice, None, transcript="colour two, edited")
    stale = apply_plan(admin_client_s2s, "find_replace", ids, token, find="colour", replace="color").content.decode()
    assert "changed since the preview" in stale and "color two, edited" in stale  # a new preview, nothing applied
    assert flags(s2s_db, ids[0])[0] == "colour one"


def test_normalize_rules_preview_and_apply(admin_client_s2s, insert_clip, s2s_db):
    ids = [insert_clip("  hello   world ,  how are you ?"), insert_clip("Fine.")]
    form = {"collapse_whitespace": "on", "punctuation_spacing": "on", "casing": "sentence"}
    page, token = rewrite(admin_client_s2s, "normalize_transcripts", ids, **form)
    assert "Hello world, how are you?" in page and "Preview: 1 change" in page
    apply_plan(admin_client_s2s, "normalize_transcripts", ids, token, **form)
    assert [flags(s2s_db, i)[0] for i in ids] == ["Hello world, how are you?", "Fine."]
    assert ClipEdit.objects.get(field="transcript").old_value == "  hello   world ,  how are you ?"


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


def test_inline_edit_of_a_clip_saved_meanwhile_is_refused(admin_client_s2s, insert_clip, s2s_db, alice):
    a = insert_clip("aa")
    services.clip_update(a, alice, None, transcript="aa by alice")  # now version 2; the page had 1
    data = {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(a), "form-0-transcript": "aa by root", f"version-{a}": "1", "_save": "Save",
    }
    response = admin_client_s2s.post("/admin/review/clip/", data)
    assert response.status_code == 200 and "Someone saved this clip after you loaded the page" in response.content.decode()
    assert flags(s2s_db, a)[0] == "aa by alice"
    data[f"version-{a}"] = "2"
    assert admin_client_s2s.post("/admin/review/clip/", data).status_code == 302
    assert flags(s2s_db, a)[0] == "aa by root"


def test_change_form_refuses_an_edit_made_on_a_stale_page(admin_client_s2s, insert_clip, s2s_db, alice):
    clip_id = insert_clip("first")
    url = f"/admin/review/clip/{clip_id}/change/"
    assert f'name="version-{clip_id}" value="1"' in admin_client_s2s.get(url).content.decode()
    services.clip_update(clip_id, alice, None, transcript="first, by alice")
    stale = admin_client_s2s.post(url, {"transcript": "first, by root", f"version-{clip_id}": "1"})
    assert stale.status_code == 200 and "it is now 2" in stale.content.decode()
    assert flags(s2s_db, clip_id)[0] == "first, by alice"


def test_edit_history_is_read_only(admin_client_s2s, insert_clip):
    clip_id = insert_clip("x")
    admin_client_s2s.post(f"/admin/review/clip/{clip_id}/change/", {"transcript": "y"})
    page = admin_client_s2s.get("/admin/review/clipedit/")
    assert page.status_code == 200 and "root" in page.content.decode()
    assert f'<a href="/admin/review/clip/{clip_id}/change/">{clip_id}</a>' in page.content.decode()
    edit = ClipEdit.objects.get()
    assert admin_client_s2s.post(f"/admin/review/clipedit/{edit.id}/delete/").status_code == 403
    assert admin_client_s2s.get("/admin/review/clip/add/").status_code == 403
