"""The review page in a real browser against the real app: every shortcut, real audio, real saves.

Each test adds its own clips of espeak-ng speech to the live capture file and opens the page
scoped to them (`id_min`/`id_max`), then checks what the reviewer sees and what the capture file
holds afterwards.
"""
import re
import time
import zlib
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS, speech_pcm

ROOT_SCREENSHOTS = SCREENSHOTS


def wait_until(check, timeout=5.0, message="condition", page=None):
    """Poll `check()` until truthy (the page writes asynchronously); returns its value.

    With `page`, waits through Playwright so its event handlers (requests, dialogs) keep running:
    the sync API only delivers events while one of its calls is in progress.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message} (last value {value!r})")
        if page is not None:
            page.wait_for_timeout(50)
        else:
            time.sleep(0.05)


def open_review(page, ids, *, show=None, extra=""):
    """Open the page on clip `show` (default: the first), navigation limited to `ids`."""
    show = ids[0] if show is None else show
    page.goto(f"/?id_min={min(ids)}&id_max={max(ids)}&id={show}{extra}")
    expect(page.locator("#entry-id")).to_have_text(str(show))
    page.wait_for_function("() => document.getElementById('review-app').dataset.ready === '1'")


def shown(page):
    return int(page.inner_text("#entry-id"))


def blur_editor(page):
    page.evaluate("document.activeElement && document.activeElement.blur()")


# ----------------------------------------------------------------------------- access
def test_it_sends_anonymous_visitors_to_login(browser, live_app):
    ctx = browser.new_context(base_url=live_app.url)
    page = ctx.new_page()
    page.goto("/")
    assert urlparse(page.url).path == "/accounts/login/"
    assert parse_qs(urlparse(page.url).query)["next"] == ["/"]
    ctx.close()


def test_header_shows_progress_and_links(page, add_clip):
    a = add_clip("good morning everyone")
    add_clip("see you later", is_reviewed=1)
    open_review(page, [a])
    expect(page.locator("h1")).to_have_text("S2S Training Data Review")
    progress = re.compile(r"([\d.]+)% \((\d+)/(\d+) reviewed\)")
    expect(page.locator("#progress-text")).to_have_text(progress)  # filled in when stats arrive
    text = page.inner_text("#progress-text")
    m = re.fullmatch(r"([\d.]+)% \((\d+)/(\d+) reviewed\)", text)
    assert m, text
    reviewed, total = int(m[2]), int(m[3])
    assert total >= 2 and 1 <= reviewed <= total
    assert page.locator(".review-header a[href='/training/']").count() == 1
    assert page.locator(".review-header a[href='/admin/']").count() == 1
    assert not page.errors.exceptions
    assert not [m for m in page.errors.console if "Content Security Policy" in m], page.errors.console


# ----------------------------------------------------------------------------- shortcuts
def test_every_shortcut_does_its_job(page, live_app, add_clip):
    a = add_clip("the quick brown fox", transcript="the quick brown box")
    b = add_clip("jumps over the lazy dog")
    c = add_clip("and runs away quickly")
    d = add_clip("into the dark forest")
    open_review(page, [a, b, c, d])
    page.uncheck("#autoplay")
    page.evaluate("window.__sameDocument = true")
    audio_paused = lambda: page.evaluate("document.getElementById('audio').paused")  # noqa: E731

    # Outside the edit box: arrows move between clips, Space plays and pauses.
    blur_editor(page)
    page.keyboard.press("ArrowRight")
    expect(page.locator("#entry-id")).to_have_text(str(b))
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#entry-id")).to_have_text(str(a))
    page.keyboard.press(" ")
    wait_until(lambda: not audio_paused(), message="Space to play")
    page.keyboard.press(" ")
    wait_until(audio_paused, message="Space to pause")

    # Inside the edit box: Space and arrows type and move the caret; Alt+Space / Ctrl+Space play.
    editor = page.locator("#editor")
    editor.click()
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")        # caret moves, the clip stays
    page.keyboard.press(" ")                # a space is typed, audio stays paused
    assert editor.input_value() == "the quick brown bo x"
    assert shown(page) == a and audio_paused()
    page.keyboard.press("Alt+Space")
    wait_until(lambda: not audio_paused(), message="Alt+Space to play")
    page.keyboard.press("Control+Space")
    wait_until(audio_paused, message="Ctrl+Space to pause")

    # Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y in the box.
    page.keyboard.press("Control+z")
    assert editor.input_value() == "the quick brown box"
    page.keyboard.press("Control+Shift+z")
    assert editor.input_value() == "the quick brown bo x"
    page.keyboard.press("Control+z")
    editor.fill("the quick brown fox")
    page.keyboard.press("Control+z")
    assert editor.input_value() == "the quick brown box"
    page.keyboard.press("Control+y")
    assert editor.input_value() == "the quick brown fox"

    # Ctrl+S saves (and the browser's "save page" does not open: the page stays).
    page.keyboard.press("Control+s")
    wait_until(lambda: live_app.clip(a)["transcript"] == "the quick brown fox", message="Ctrl+S save")
    assert live_app.clip(a)["is_reviewed"] == 0

    # Ctrl+R marks reviewed, without reloading the page.
    page.keyboard.press("Control+r")
    wait_until(lambda: live_app.clip(a)["is_reviewed"] == 1, message="Ctrl+R mark reviewed")
    assert page.evaluate("window.__sameDocument") is True

    # Alt+→ in the box moves on, saving the unsaved edit first (autosave on navigate).
    editor.fill("the quick brown fox!")
    page.keyboard.press("Alt+ArrowRight")
    expect(page.locator("#entry-id")).to_have_text(str(b))
    assert live_app.clip(a)["transcript"] == "the quick brown fox!"
    page.locator("#editor").click()
    page.keyboard.press("Alt+ArrowLeft")
    expect(page.locator("#entry-id")).to_have_text(str(a))

    # Ctrl+Enter: save, mark reviewed, next clip.
    page.keyboard.press("Alt+ArrowRight")
    expect(page.locator("#entry-id")).to_have_text(str(b))
    editor.fill("jumps over the lazy dog.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#entry-id")).to_have_text(str(c))
    row = live_app.clip(b)
    assert (row["transcript"], row["is_reviewed"]) == ("jumps over the lazy dog.", 1)

    # Ctrl+D deletes (outside the box too) and shows the next clip.
    blur_editor(page)
    page.keyboard.press("Control+d")
    expect(page.locator("#entry-id")).to_have_text(str(d))
    wait_until(lambda: live_app.clip(c) is None, message="Ctrl+D delete")
    expect(page.locator(".toast", has_text=f"Clip {c} deleted")).to_be_visible()

    # ? lists the shortcuts; Esc closes the list.
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    expect(page.locator("#help-dialog")).to_contain_text("Ctrl")
    page.keyboard.press("Escape")
    expect(page.locator("#help-dialog")).to_be_hidden()

    assert page.evaluate("window.__sameDocument") is True
    assert not page.errors.exceptions, page.errors.exceptions


def test_stats_panel_counts_the_session(page, live_app, add_clip):
    a = add_clip("one two three four")
    b = add_clip("five six seven eight")
    open_review(page, [a, b])
    before = page.inner_text("#progress-text")
    page.wait_for_timeout(300)
    page.click("#btn-save-next")
    expect(page.locator("#entry-id")).to_have_text(str(b))
    expect(page.locator("#s-count")).to_have_text("1")
    assert page.inner_text("#s-avg") != "–"
    assert float(page.inner_text("#s-rate")) > 0
    assert page.inner_text("#s-remaining") != "–"
    expect(page.locator("#progress-text")).not_to_have_text(before)
    assert live_app.clip(a)["is_reviewed"] == 1
    # The time spent on the clip went along with the save.
    conn = live_app.db()
    seconds = conn.execute("SELECT review_seconds FROM s2s_review_clipmeta WHERE clip_id = ?", (a,)).fetchone()[0]
    conn.close()
    assert seconds >= 0.3


# ----------------------------------------------------------------------------- audio
def test_audio_plays_and_seeks_with_range_requests(page, add_clip):
    a = add_clip("this sentence is long enough to play for a few seconds at least")
    statuses = []
    page.on("response", lambda r: "/audio" in r.url and statuses.append(r.status))
    open_review(page, [a])
    page.click("#btn-play")
    t0 = page.evaluate("document.getElementById('audio').currentTime")
    page.wait_for_timeout(1200)
    t1 = page.evaluate("document.getElementById('audio').currentTime")
    assert t1 - t0 > 0.5, (t0, t1)
    page.click("#btn-play")  # pause

    # Click at three quarters of the waveform: the audio seeks there and stays.
    box = page.locator("#waveform").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    duration = page.evaluate("document.getElementById('audio').duration")
    wait_until(lambda: page.evaluate("document.getElementById('audio').seeking") is False, message="seek done")
    pos = page.evaluate("document.getElementById('audio').currentTime")
    assert abs(pos - 0.75 * duration) < 0.25, (pos, duration)
    assert 206 in statuses, statuses
    expect(page.locator("#time-current")).not_to_have_text("0:00")
    assert page.get_attribute("#download", "href").endswith("/audio?format=wav")


def test_waveform_is_drawn(page, add_clip):
    a = add_clip("a waveform should appear for this clip")
    open_review(page, [a])
    coloured = wait_until(lambda: page.evaluate("""() => {
        const c = document.getElementById('waveform');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4) {
          // wave colours are darker than the light background
          if (data[i] < 140 && data[i + 1] < 160 && data[i + 3] > 0) n++;
        }
        return n;
    }"""), message="waveform pixels")
    assert coloured > 500
    expect(page.locator("#q-duration")).to_have_text(re.compile(r"\d+\.\d\d s"))
    expect(page.locator("#q-rms")).to_have_text(re.compile(r"-?\d+\.\d dBFS"))


def test_a_clip_with_broken_audio_says_so(page, add_clip):
    a = add_clip("nothing", transcript="words with no audio", blob=b"not zlib at all")
    open_review(page, [a])
    expect(page.locator("#warnings")).to_contain_text("Audio problem")
    expect(page.locator("#waveform-status")).to_contain_text("No audio")
    assert not page.errors.exceptions


# ----------------------------------------------------------------------------- writing
def test_delete_then_undo_restores_the_same_clip(page, live_app, add_clip):
    a = add_clip("please delete me")
    b = add_clip("i stay here")
    open_review(page, [a, b])
    page.click("#btn-delete")
    expect(page.locator("#entry-id")).to_have_text(str(b))
    wait_until(lambda: live_app.clip(a) is None, message="row moved to trash")
    page.locator(".toast", has_text=f"Clip {a} deleted").get_by_role("button", name="Undo").click()
    expect(page.locator("#entry-id")).to_have_text(str(a))
    row = wait_until(lambda: live_app.clip(a), message="row restored")
    assert row["transcript"] == "please delete me"


def test_a_conflict_shows_both_versions_and_keeping_mine_saves_it(page, live_app, add_clip, api_request):
    a = add_clip("the meeting is at ten", transcript="the meeting is at then")
    open_review(page, [a])
    page.fill("#editor", "the meeting is at ten")
    # Someone else saves the clip behind the page's back.
    res = api_request("PATCH", f"/api/entries/{a}", json={"transcript": "the meeting is at 10"})
    assert res.status == 200, res.text()
    page.keyboard.press("Control+s")
    dialog = page.locator("#conflict-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#conflict-mine")).to_have_text("the meeting is at ten")
    expect(page.locator("#conflict-theirs")).to_have_text("the meeting is at 10")
    expect(page.locator("#conflict-who")).to_contain_text(f"Last change by {live_app.username}")
    page.click("#conflict-keep")
    expect(dialog).to_be_hidden()
    wait_until(lambda: live_app.clip(a)["transcript"] == "the meeting is at ten", message="mine saved")
    expect(page.locator("#dirty")).to_be_hidden()


def test_a_conflict_lets_me_take_theirs(page, live_app, add_clip, api_request):
    a = add_clip("call me tomorrow", transcript="call me to morrow")
    open_review(page, [a])
    page.fill("#editor", "call me tomorrow")
    res = api_request("PATCH", f"/api/entries/{a}", json={"transcript": "Call me tomorrow."})
    assert res.status == 200, res.text()
    page.click("#btn-save")
    expect(page.locator("#conflict-dialog")).to_be_visible()
    page.click("#conflict-take")
    expect(page.locator("#conflict-dialog")).to_be_hidden()
    assert page.input_value("#editor") == "Call me tomorrow."
    assert live_app.clip(a)["transcript"] == "Call me tomorrow."
    expect(page.locator("#dirty")).to_be_hidden()
    # Taking theirs is one more undo step: my text is one Ctrl+Z away.
    page.click("#btn-undo")
    assert page.input_value("#editor") == "call me tomorrow"


def test_undo_survives_a_save_and_a_reload(page, live_app, add_clip):
    a = add_clip("first draft here", transcript="first draft hear")
    open_review(page, [a])
    page.fill("#editor", "first draft here")
    page.fill("#editor", "First draft here.")
    page.keyboard.press("Control+s")
    wait_until(lambda: live_app.clip(a)["transcript"] == "First draft here.", message="save")
    expect(page.locator("#dirty")).to_be_hidden()
    expect(page.locator("#edits-count")).to_have_text("1")
    expect(page.locator("#edits-list li")).to_contain_text("first draft hear → First draft here.")
    page.keyboard.press("Control+z")
    assert page.input_value("#editor") == "first draft here"
    expect(page.locator("#dirty")).to_be_visible()
    page.keyboard.press("Control+y")
    assert page.input_value("#editor") == "First draft here."
    page.reload()
    expect(page.locator("#entry-id")).to_have_text(str(a))
    page.click("#btn-undo")
    assert page.input_value("#editor") == "first draft here"
    page.click("#btn-undo")
    assert page.input_value("#editor") == "first draft hear"
    assert page.is_disabled("#btn-undo")


def test_counts_validation_and_word_diff(page, add_clip):
    a = add_clip("short one", transcript="short one")
    open_review(page, [a])
    page.fill("#editor", "short won today")
    expect(page.locator("#counts")).to_have_text("Characters: 15 | Words: 3")
    assert page.locator("#diff del").all_inner_texts() == ["one"]
    assert page.locator("#diff ins").all_inner_texts() == ["won", "today"]
    page.fill("#editor", "   ")
    expect(page.locator("#validation .error")).to_contain_text("empty")
    page.keyboard.press("Control+s")
    expect(page.locator(".toast-error")).to_contain_text("Not saved")
    page.fill("#editor", " ".join(["word"] * 60))
    expect(page.locator("#validation .warning", has_text="Very long")).to_be_visible()
    expect(page.locator("#validation .warning", has_text="repeats")).to_be_visible()


def test_leaving_with_unsaved_text_asks_first(context, live_app, add_clip):
    a = add_clip("do not lose this")
    page = context.new_page()
    open_review(page, [a])
    page.click("#editor")  # a real gesture: Chrome only asks on pages the user interacted with
    page.keyboard.press("End")
    page.keyboard.type(" edit")
    with page.expect_event("dialog") as info:
        page.close(run_before_unload=True)
    assert info.value.type == "beforeunload"
    info.value.dismiss()


def test_a_transcript_with_markup_shows_as_text(page, add_clip):
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)"> hi'
    a = add_clip("hi there", transcript=evil)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_review(page, [a])
    expect(page.locator("#original")).to_have_text(evil)
    assert page.input_value("#editor") == evil
    page.fill("#editor", evil + " <b>bold</b>")
    expect(page.locator("#diff ins")).to_have_text("<b>bold</b>")
    page.wait_for_timeout(300)
    assert page.locator("#review-app img, #review-app script, #review-app b").count() == 0
    assert dialogs == []


def test_filters_live_in_the_url_and_feed_export(page, add_clip, api_request):
    a = add_clip("alpha clip", is_reviewed=1)
    b = add_clip("beta clip")
    open_review(page, [a, b])
    page.click("#filter-menu summary")
    page.select_option("#filter-form select[name=reviewed]", "0")
    page.fill("#filter-form input[name=q]", "beta")
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#entry-id")).to_have_text(str(b))
    query = parse_qs(urlparse(page.url).query)
    assert query["reviewed"] == ["0"] and query["q"] == ["beta"] and query["id_min"] == [str(a)]
    href = page.get_attribute("#export", "href")
    assert href.startswith("/api/export?") and "reviewed=0" in href and "q=beta" in href
    export = api_request("GET", href)
    assert export.status == 200 and export.body()[:2] == b"PK"  # a zip of what the filter shows
    page.reload()
    expect(page.locator("#entry-id")).to_have_text(str(b))
    assert page.input_value("#filter-form input[name=q]") == "beta"


def test_jump_to_id_and_skip_to_unreviewed(page, add_clip):
    a = add_clip("first")
    b = add_clip("second", is_reviewed=1)
    c = add_clip("third")
    open_review(page, [a, b, c])
    page.fill("#jump-id", str(b))
    page.press("#jump-id", "Enter")
    expect(page.locator("#entry-id")).to_have_text(str(b))
    page.click("#btn-prev")
    expect(page.locator("#entry-id")).to_have_text(str(a))
    page.click("#btn-skip")
    expect(page.locator("#entry-id")).to_have_text(str(c))


def test_the_next_clip_is_prefetched(page, add_clip):
    a = add_clip("current clip")
    b = add_clip("next clip to prefetch")
    audio_requests = []
    page.on("request", lambda r: re.search(rf"/api/entries/{b}/audio", r.url) and audio_requests.append(r.url))
    open_review(page, [a, b])
    wait_until(lambda: audio_requests, message="prefetch of the next clip's audio", page=page)
    page.wait_for_function(f"() => document.getElementById('review-app').dataset.prefetched === '{b}'")
    page.click("#btn-next")
    expect(page.locator("#entry-id")).to_have_text(str(b))
    # Played from memory, and (autoplay) it really plays.
    assert page.evaluate("document.getElementById('audio').src").startswith("blob:")
    wait_until(lambda: page.evaluate("document.getElementById('audio').currentTime") > 0.3,
               message="the next clip playing", page=page)


# ----------------------------------------------------------------------------- layout
@pytest.mark.parametrize("width,height,name", [(1280, 800, "review-desktop"), (390, 844, "review-phone"),
                                               (375, 740, None)])
def test_layout_fits_without_horizontal_scroll(browser, live_app, login_state, add_clip, width, height, name):
    ids = [add_clip("Hello, how are you doing today?", transcript="Hello how are you doing to day"),
           add_clip("Set a timer for twenty five minutes please")]
    ctx = browser.new_context(base_url=live_app.url, storage_state=login_state,
                              viewport={"width": width, "height": height}, device_scale_factor=1)
    page = ctx.new_page()
    open_review(page, ids)
    page.fill("#editor", "Hello, how are you doing today?")
    page.wait_for_timeout(400)  # waveform drawn
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{overflow}px of horizontal overflow at {width}px"
    for sel in ["#btn-save-next", "#btn-play", "#editor", "#waveform"]:
        box = page.locator(sel).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (sel, box)
    if name:
        page.screenshot(path=str(ROOT_SCREENSHOTS / f"{name}.png"), full_page=True)
    ctx.close()


def test_controls_have_labels(page, add_clip):
    a = add_clip("labels")
    open_review(page, [a])
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('#review-app button, #review-app input, #review-app select, #review-app textarea')]
        .filter(el => el.offsetParent !== null)
        .filter(el => !(el.getAttribute('aria-label') || el.labels?.length || el.textContent.trim()))
        .map(el => el.id || el.outerHTML.slice(0, 60))""")
    assert unlabeled == []
    assert page.get_attribute("#toasts", "aria-live") == "polite"


def test_undo_steps_are_words_when_typing(page, add_clip):
    a = add_clip("typing test", transcript="note")
    open_review(page, [a])
    page.click("#editor")
    page.keyboard.press("End")
    page.keyboard.type(" to self")
    page.keyboard.press("Control+z")
    assert page.input_value("#editor") == "note to "
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    assert page.input_value("#editor") == "note "
    page.keyboard.press("Control+z")
    assert page.input_value("#editor") == "note"
    page.keyboard.press("Control+Shift+z")
    assert page.input_value("#editor") == "note "


def test_a_filter_with_no_match_says_so(page, add_clip):
    a = add_clip("nothing matches this")
    open_review(page, [a])
    page.click("#filter-menu summary")
    page.fill("#filter-form input[name=q]", "zebra-that-is-not-there")
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#empty-state")).to_be_visible()
    assert page.is_disabled("#btn-save-next")
    page.click("#empty-clear")
    expect(page.locator("#empty-state")).to_be_hidden()
    assert "q=" not in page.url
    assert not page.errors.exceptions


def test_quality_warnings_show_for_clipped_and_silent_audio(page, add_clip):
    loud = np.frombuffer(speech_pcm("this is far too loud"), dtype="<i2").astype(np.int32) * 12
    clipped = add_clip("this is far too loud", blob=zlib.compress(np.clip(loud, -32768, 32767).astype("<i2").tobytes()))
    silent = add_clip("nothing", transcript="was anyone speaking", blob=zlib.compress(np.zeros(32000, "<i2").tobytes()))
    open_review(page, [clipped, silent])
    expect(page.locator("#warnings")).to_contain_text("clipping")
    assert float(page.inner_text("#q-peak").split()[0]) > -0.5
    page.click("#btn-next")
    expect(page.locator("#entry-id")).to_have_text(str(silent))
    expect(page.locator("#warnings")).to_contain_text("silence")


def test_after_a_delete_the_neighbours_skip_the_deleted_clip(page, add_clip):
    a, b, c = add_clip("first one"), add_clip("second one"), add_clip("third one")
    open_review(page, [a, b, c], show=b)
    page.click("#btn-delete")
    expect(page.locator("#entry-id")).to_have_text(str(c))
    page.click("#btn-prev")
    expect(page.locator("#entry-id")).to_have_text(str(a))
    page.click("#btn-next")
    expect(page.locator("#entry-id")).to_have_text(str(c))
    assert not page.locator(".toast-error").count()


def test_date_range_and_problem_filters(page, add_clip):
    jan = add_clip("january clip", timestamp="2025-01-10 10:00:00")
    march = add_clip("march clip", timestamp="2025-03-10 10:00:00")
    broken = add_clip("broken", transcript="broken audio clip", blob=None, timestamp="2025-03-11 10:00:00")
    open_review(page, [jan, march, broken])
    page.click("#filter-menu summary")
    page.fill("#filter-form input[name=date_from]", "2025-03-01")
    page.fill("#filter-form input[name=date_to]", "2025-03-10")
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#entry-id")).to_have_text(str(march))
    assert page.is_disabled("#btn-prev") and page.is_disabled("#btn-next")
    page.click("#filter-menu summary")
    page.fill("#filter-form input[name=date_to]", "")
    page.select_option("#filter-form select[name=has_problem]", "1")
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#entry-id")).to_have_text(str(broken))
    expect(page.locator("#warnings")).to_contain_text("Audio problem")
    assert page.is_disabled("#btn-prev") and page.is_disabled("#btn-next")
    expect(page.locator("#filter-count")).to_have_text("2")


def test_quick_presses_each_move_one_clip(page, add_clip):
    ids = [add_clip(f"clip number {n}") for n in range(4)]
    open_review(page, ids)
    blur_editor(page)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#entry-id")).to_have_text(str(ids[3]))
