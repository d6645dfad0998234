"""Django admin in a real browser: players in the clip list, and a find-and-replace from the
changelist through its preview to the saved transcripts, under the real CSP."""
import uuid


def test_changelist_rows_play_their_audio(page, live_app, add_clip, screenshot_dir):
    tag = uuid.uuid4().hex[:8]
    ids = [add_clip("good morning everyone", transcript=f"good morning {tag}"),
           add_clip("see you tomorrow", transcript=f"see you tomorrow {tag}")]
    page.goto(f"/admin/review/clip/?q={tag}")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert page.locator(f'audio[src="/api/entries/{ids[0]}/audio"]').count() == 1
    page.locator(f'audio[src="/api/entries/{ids[1]}/audio"]').evaluate("a => a.play()")
    page.wait_for_function(f"() => document.querySelector('audio[src=\"/api/entries/{ids[1]}/audio\"]').currentTime > 0.3")
    assert rows.first.locator("td.field-problem").inner_text() == "-"  # good speech, good text: no problem shown
    page.set_viewport_size({"width": 1600, "height": 700})
    page.screenshot(path=str(screenshot_dir / "admin-changelist.png"))
    assert not page.errors.exceptions and not [m for m in page.errors.console if "Content Security Policy" in m]


def test_find_and_replace_from_the_changelist_through_the_preview(page, live_app, add_clip, screenshot_dir):
    tag = uuid.uuid4().hex[:8]
    ids = [add_clip("their house", transcript=f"there house {tag}"),
           add_clip("their car", transcript=f"there car {tag}"),
           add_clip("over there", transcript=f"over there {tag}")]
    page.goto(f"/admin/review/clip/?q={tag}")
    page.check("#action-toggle")  # select every clip on the page (all three)
    page.select_option("select[name=action]", "find_replace")
    page.click("button[name=index]")
    page.fill("#id_find", r"^there (\w+)")
    page.fill("#id_replace", r"their \1")
    page.check("#id_use_regex")
    page.click("button[value=preview]")
    preview = page.locator("table.confirm-preview tbody tr")
    assert preview.count() == 2
    assert f"their house {tag}" in page.locator("table.confirm-preview").inner_text()
    assert live_app.clip(ids[0])["transcript"] == f"there house {tag}"  # nothing saved by a preview
    page.screenshot(path=str(screenshot_dir / "admin-find-replace-preview.png"), full_page=True)
    page.click("button[value=apply]")
    page.wait_for_url(lambda url: "/admin/review/clip/" in url and "confirm" not in url)
    assert "2 transcripts changed" in page.locator(".messagelist").inner_text()
    assert [live_app.clip(i)["transcript"] for i in ids] == [f"their house {tag}", f"their car {tag}", f"over there {tag}"]
    assert not page.errors.exceptions and not [m for m in page.errors.console if "Content Security Policy" in m]


def test_export_action_downloads_a_zip_that_reimports(page, live_app, add_clip, tmp_path):
    import zipfile

    tag = uuid.uuid4().hex[:8]
    ids = [add_clip("one two three", transcript=f"one two three {tag}", is_reviewed=1),
           add_clip("four five", transcript=f"four five {tag}", is_trained=1)]
    page.goto(f"/admin/review/clip/?q={tag}")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "export_selected")
    page.click("button[name=index]")
    assert "2 clips will be written to a zip" in page.locator("#content").inner_text()
    page.select_option("#id_format", "jsonl")
    with page.expect_download() as info:
        page.click("button[value=apply]")
    path = tmp_path / "export.zip"
    info.value.save_as(path)
    names = zipfile.ZipFile(path).namelist()
    assert sorted(names) == sorted([f"audio/{i}.wav" for i in ids] + ["manifest.jsonl"])
    manifest = zipfile.ZipFile(path).read("manifest.jsonl").decode()
    assert f'"text": "one two three {tag}"' in manifest and '"is_trained": true' in manifest
