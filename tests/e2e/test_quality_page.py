"""Model-assisted review in a real browser: the real tiny.en re-transcribes espeak-ng speech
(`manage.py transcribeclips` against the live app's capture file), the page shows the suggestion
with unsure words marked, Ctrl+G takes it, and the check filter and priority order work."""
import zlib

import numpy as np
from playwright.sync_api import expect

from tests.e2e.conftest import _manage, speech_pcm
from tests.e2e.test_review_page import open_review, wait_until


def transcribe(live_app, ids):
    _manage(live_app.env, "transcribeclips", "--id-min", str(min(ids)), "--id-max", str(max(ids)), "-v", "0")


def test_suggestion_is_shown_with_unsure_words_and_ctrl_g_accepts_it(page, add_clip, live_app, api_request):
    right = add_clip("Please restart the database server before the meeting.",
                     transcript="please restart the data bass server before the meeting")
    hard = add_clip("Tell Ravindra the Plinth staging is back up.")
    transcribe(live_app, [right, hard])

    open_review(page, [right, hard])
    expect(page.locator("#suggestion")).to_be_visible()
    suggestion = api_request("GET", f"/api/entries/{right}").json()["suggestion"]
    assert "server" in suggestion["text"].lower() and suggestion["words"]
    expect(page.locator("#suggestion-text")).to_have_text(" ".join(w["word"] for w in suggestion["words"]))
    expect(page.locator("#suggestion-text .low-conf")).to_have_count(len(suggestion["low_confidence_words"]))

    page.click("#editor")
    page.keyboard.press("Control+g")
    expect(page.locator("#editor")).to_have_value(suggestion["text"])
    expect(page.locator("#dirty")).to_be_visible()
    page.keyboard.press("Control+z")  # one undo step brings the old text back
    expect(page.locator("#editor")).to_have_value("please restart the data bass server before the meeting")
    page.keyboard.press("Control+g")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#entry-id")).to_have_text(str(hard))
    wait_until(lambda: live_app.clip(right)["is_reviewed"] == 1, page=page, message="saved and reviewed")
    assert live_app.clip(right)["transcript"] == suggestion["text"]

    hard_words = api_request("GET", f"/api/entries/{hard}").json()["suggestion"]
    assert hard_words["low_confidence_words"], "tiny.en is unsure of espeak's 'Ravindra'"
    expect(page.locator("#suggestion-text .low-conf")).to_have_count(len(hard_words["low_confidence_words"]))
    assert not page.errors.exceptions


def test_shortcut_overlay_lists_the_accept_key(page, add_clip):
    clip = add_clip("hello there")
    open_review(page, [clip])
    page.locator("#editor").blur()
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    expect(page.locator("#help-dialog")).to_contain_text("Accept the model's suggested transcript")
    expect(page.locator("#help-dialog tr", has_text="suggested")).to_contain_text("Ctrl+G")
    page.keyboard.press("Escape")
    expect(page.locator("#suggestion")).to_be_hidden()  # never re-transcribed: no suggestion box


def test_check_filter_and_priority_order_from_the_filter_menu(page, add_clip, live_app, api_request):
    fine = add_clip("Please restart the database server before the meeting.")
    invented = add_clip("Please restart the database server before the meeting.", transcript="Thanks for watching!")
    wrong = add_clip("Tell Ravindra the Plinth staging is back up.", transcript="tell me the plants")
    transcribe(live_app, [fine, invented, wrong])
    # A reviewer already agreed with the model on `fine`: nothing left to doubt there.
    said = api_request("GET", f"/api/entries/{fine}").json()["suggestion"]["text"]
    assert api_request("PATCH", f"/api/entries/{fine}", json={"transcript": said}).status == 200

    open_review(page, [fine, invented, wrong])
    expect(page.locator("#warnings li[data-code]")).to_have_count(0)
    page.click("#filter-menu summary")
    expect(page.locator("#filter-check option[value=hallucination]")).to_have_count(1)
    page.select_option("#filter-check", "hallucination")
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#entry-id")).to_have_text(str(invented))
    expect(page.locator("#warnings li[data-code=hallucination]")).to_be_visible()
    expect(page.locator("#btn-next")).to_be_disabled()
    assert "check=hallucination" in page.url

    page.click("#filter-menu summary")
    page.select_option("#filter-check", "")
    page.select_option("#filter-form select[name=ordering]", "priority")
    page.click("#filter-form button[type=submit]")
    # Most likely wrong first: the made-up "Thanks for watching!" and the misheard sentence
    # both disagree with the model; the correct clip comes last.
    ids = [r["id"] for r in api_request("GET", f"/api/entries?ordering=priority&id_min={fine}&id_max={wrong}").json()["results"]]
    assert set(ids[:2]) == {invented, wrong} and ids[2] == fine
    expect(page.locator("#entry-id")).to_have_text(str(ids[0]))
    page.click("#btn-next")  # actions run one after another: this follows the filter change
    expect(page.locator("#entry-id")).to_have_text(str(ids[1]))
    page.click("#btn-next")
    expect(page.locator("#entry-id")).to_have_text(str(fine))
    assert "ordering=priority" in page.url


def test_clipping_and_silence_percentages_are_shown(page, add_clip):
    loud = np.frombuffer(speech_pcm("this is far too loud"), dtype="<i2").astype(np.int32) * 12
    clipped = add_clip("this is far too loud", blob=zlib.compress(np.clip(loud, -32768, 32767).astype("<i2").tobytes()))
    open_review(page, [clipped])
    expect(page.locator("#warnings li[data-code=clipping]")).to_be_visible()
    clipping = float(page.inner_text("#q-clipping").split()[0])
    assert clipping > 0.1  # per cent of samples at full scale
    assert 0 <= float(page.inner_text("#q-silence").split()[0]) < 90
