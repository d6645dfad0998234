"""Admin quality control: the check filter and the bulk accept action with its confirmation page."""
import sqlite3

import numpy as np
from django.core.management import call_command

from review.confidence import AsrResult, WordConfidence
from review.models import ClipEdit
from review.quality_services import clip_asr_save
from tests.conftest import S2S, blob_of, tone

pytestmark = S2S


def row(path, clip_id):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT transcript, is_reviewed FROM s2s_training_data WHERE id = ?", (clip_id,)).fetchone()
    finally:
        conn.close()


def sure(text: str, probs=None) -> AsrResult:
    words = text.split()
    probs = probs or [0.97] * len(words)
    return AsrResult(text, -0.05, 0.01, [WordConfidence(w, i / 3, i / 3 + 0.3, p) for i, (w, p) in enumerate(zip(words, probs, strict=True))])


def test_changelist_filters_by_quality_check(admin_client_s2s, insert_clip):
    insert_clip("a loud clipped recording", blob=blob_of(np.clip(tone(3.0, amp=3.0), -1, 1)))
    insert_clip("Thanks for watching!")
    insert_clip("a calm clean recording")
    call_command("scanclips", verbosity=0)
    page = admin_client_s2s.get("/admin/review/clip/?check=clipping").content.decode()
    assert "a loud clipped recording" in page and "a calm clean recording" not in page and "Thanks for watching" not in page
    page = admin_client_s2s.get("/admin/review/clip/?check=hallucination").content.decode()
    assert "Thanks for watching" in page and "a loud clipped recording" not in page
    assert "Clipping (1)" in admin_client_s2s.get("/admin/review/clip/").content.decode()


def test_accept_suggestions_asks_first_then_accepts_only_confident_agreement(admin_client_s2s, insert_clip, s2s_db):
    agree = insert_clip("turn on the lights")
    differ = insert_clip("turn of the lights")
    unsure = insert_clip("call siobhan")
    clip_asr_save(agree, "m", sure("Turn on the lights."), None)
    clip_asr_save(differ, "m", sure("Turn off the lights."), None)
    clip_asr_save(unsure, "m", sure("Call Siobhan.", [0.9, 0.2]), None)
    selected = {"action": "accept_suggestions", "_selected_action": [agree, differ, unsure]}

    confirm = admin_client_s2s.post("/admin/review/clip/", selected)
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "1 of 3 selected clips will be accepted" in page and "Turn on the lights." in page
    assert "disagrees" in page and "probability" in page
    assert row(s2s_db, agree) == ("turn on the lights", 0)  # nothing changed before confirming

    done = admin_client_s2s.post("/admin/review/clip/", {**selected, "confirm": "yes"}, follow=True)
    assert "1 suggestions accepted" in done.content.decode()
    assert row(s2s_db, agree) == ("Turn on the lights.", 1)
    assert row(s2s_db, differ) == ("turn of the lights", 0) and row(s2s_db, unsure) == ("call siobhan", 0)
    history = ClipEdit.objects.using("s2s").filter(clip_id=agree, field="transcript").get()
    assert (history.username, history.old_value, history.new_value) == ("root", "turn on the lights", "Turn on the lights.")


def test_indicator_list_shows_metrics_checks_and_priority_most_likely_wrong_first(admin_client_s2s, insert_clip):
    clipped = insert_clip("a loud clipped recording", blob=blob_of(np.clip(tone(3.0, amp=3.0), -1, 1)))
    calm = insert_clip("a calm clean recording")
    call_command("scanclips", verbosity=0)
    page = admin_client_s2s.get("/admin/review/clipindicators/").content.decode()
    assert page.index(f">{clipped}</a>") < page.index(f">{calm}</a>")  # flagged first
    assert 'class="field-checks">clipping' in page and 'class="field-peak_dbfs">0.0<' in page
    only = admin_client_s2s.get("/admin/review/clipindicators/?check=clipping").content.decode()
    assert f">{clipped}</a>" in only and f">{calm}</a>" not in only
