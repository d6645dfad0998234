"""Quality control end to end on a real capture file: cached checks and the `check` filter, the
model's re-transcription (real tiny.en on espeak-ng speech), the priority order, bulk accept."""
import json

import numpy as np
import pytest
import redis
from django.core.management import call_command

from review.confidence import AsrResult, WordConfidence
from review.models import ClipEdit
from review.quality_selectors import asr_model_dir, asr_model_id, quality_inputs
from review.quality_services import (
    AcceptRule,
    clip_asr_save,
    clips_accept_suggestions,
    clips_quality_refresh,
    clips_transcribe,
)
from review.speech import espeak_path, synthesize_espeak
from tests.conftest import S2S, blob_of, tone

pytestmark = S2S
SPOKEN = "Please restart the database server before the meeting."


@pytest.fixture(scope="module")
def speech_blob() -> bytes:
    if espeak_path() is None:
        pytest.skip("espeak-ng is required for real speech")
    voice = synthesize_espeak(SPOKEN)
    x = np.concatenate([np.zeros(3200, np.float32), voice, np.zeros(4800, np.float32)])
    return blob_of(0.5 * x / np.max(np.abs(x)))


def ids_of(api, query: str) -> list[int]:
    response = api.get(f"/api/entries?{query}")
    assert response.status_code == 200, response.content
    return [r["id"] for r in response.json()["results"]]


def asr(text: str, avg: float = -0.1, probs=None) -> AsrResult:
    words = text.split()
    probs = probs or [0.95] * len(words)
    return AsrResult(text, avg, 0.01, [WordConfidence(w, i * 0.3, i * 0.3 + 0.25, p)
                                       for i, (w, p) in enumerate(zip(words, probs, strict=True))])


def test_check_filter_lists_exactly_the_flagged_clips(api, insert_clip, speech_blob):
    clean = insert_clip(SPOKEN, blob=speech_blob)
    clipped = insert_clip("a loud clip that clips badly", blob=blob_of(np.clip(tone(3.0, amp=3.0), -1, 1)))
    silent = insert_clip("Thank you.", blob=blob_of(np.zeros(32000, np.float32)))
    looping = insert_clip("go go go go go go", blob=speech_blob)
    call_command("scanclips", verbosity=0)
    assert ids_of(api, "check=clipping") == [clipped]
    assert ids_of(api, "check=silence") == [silent]
    assert ids_of(api, "check=hallucination") == [silent]
    assert ids_of(api, "check=repetition") == [looping]
    assert clean not in ids_of(api, "check=low_snr") + ids_of(api, "check=clipping")
    checks = {c["code"]: c["clips"] for c in api.get("/api/quality/checks").json()}
    assert checks["clipping"] == 1 and checks["hallucination"] == 1 and checks["foreign_script"] == 0


def test_unknown_check_code_is_a_400_naming_the_codes(api, s2s_db):
    response = api.get("/api/entries?check=nonsense")
    assert response.status_code == 400
    assert "clipping" in response.json()["check"][0]


def test_detail_shows_check_codes_and_a_save_refreshes_the_filter(api, insert_clip, speech_blob):
    clip_id = insert_clip(SPOKEN, blob=speech_blob)
    call_command("scanclips", verbosity=0)
    assert api.get(f"/api/entries/{clip_id}").json()["checks"] == []
    assert ids_of(api, "check=hallucination") == []
    assert api.put(f"/api/entries/{clip_id}", {"transcript": "Thanks for watching!"}, format="json").status_code == 200
    body = api.get(f"/api/entries/{clip_id}").json()
    assert "hallucination" in [c["code"] for c in body["checks"]]
    assert ids_of(api, "check=hallucination") == [clip_id]


def test_real_model_re_transcribes_and_the_page_gets_a_suggestion(api, insert_clip, speech_blob):
    other = insert_clip("nothing to see", blob=speech_blob)  # a lower id: first on a tie
    clip_id = insert_clip("please restart the data bass server before the meeting", blob=speech_blob)
    result = clips_transcribe([clip_id])
    assert result["transcribed"] == 1 and result["failed"] == 0
    suggestion = api.get(f"/api/entries/{clip_id}").json()["suggestion"]
    assert "database" in suggestion["text"].lower()
    assert suggestion["avg_logprob"] < 0 and 0 <= suggestion["no_speech_prob"] <= 1
    assert len(suggestion["words"]) >= 6
    assert all(0 < w["probability"] <= 1 and w["end"] >= w["start"] for w in suggestion["words"])
    assert suggestion["min_word_prob"] == pytest.approx(min(w["probability"] for w in suggestion["words"]), abs=1e-3)
    assert suggestion["low_confidence_words"] == [i for i, w in enumerate(suggestion["words"]) if w["probability"] < 0.5]
    # disagreement raised its priority above an unscored clip's
    clips_quality_refresh([other])
    assert ids_of(api, "ordering=priority") == [clip_id, other]


def test_transcription_task_stores_results_and_skips_bad_audio(api, insert_clip, speech_blob):
    from review.tasks import clips_transcribe as task
    from s2s_trainer.celery import app
    from tests.training_jobs.conftest import REDIS_TEST_URL

    app.conf.update(broker_url=REDIS_TEST_URL, result_backend=REDIS_TEST_URL)
    good = insert_clip("hello", blob=speech_blob)
    broken = insert_clip("broken", blob=b"not zlib at all")
    result = task.apply(args=([good, broken],), task_id="transcribe-test-1")
    assert result.get() == {"model": result.get()["model"], "transcribed": 1, "failed": 1}
    assert [i.clip_id for i in quality_inputs([good, broken]) if i.asr is not None] == [good]
    # progress went to the result backend (Redis) as the task ran; the status API reads it
    status = api.get("/api/quality/transcribe/transcribe-test-1").json()
    assert status["state"] == "PROGRESS" and (status["done"], status["total"], status["failed"]) == (2, 2, 1)


def test_transcribe_api_queues_the_matching_clips(api, insert_clip, speech_blob):
    from s2s_trainer.celery import app
    from tests.training_jobs.conftest import REDIS_TEST_URL

    app.conf.update(broker_url=REDIS_TEST_URL, result_backend=REDIS_TEST_URL)
    queue = redis.Redis.from_url(REDIS_TEST_URL)
    queue.delete("data")
    first = insert_clip("one", blob=speech_blob)
    insert_clip("two", blob=speech_blob, is_reviewed=1)
    response = api.post("/api/quality/transcribe?reviewed=0", {"limit": 10}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["clips"] == 1
    message = json.loads(queue.lpop("data"))
    assert message["headers"]["task"] == "review.tasks.clips_transcribe"
    assert message["headers"]["id"] == response.json()["task_id"]
    assert message["headers"]["argsrepr"] == f"([{first}], None)"
    bad = api.post("/api/quality/transcribe", {"model": "/nowhere"}, format="json")
    assert bad.status_code == 400 and "model.bin" in bad.json()["model"][0]


def test_priority_order_and_its_neighbours(api, insert_clip, speech_blob):
    agree = insert_clip("turn on the lights", blob=speech_blob)
    wrong = insert_clip("turn of the lice please now", blob=speech_blob)
    unsure = insert_clip("call Siobhan", blob=speech_blob)
    plain = insert_clip("nothing scored", blob=speech_blob)
    clip_asr_save(agree, "test/model", asr("Turn on the lights."), None)
    clip_asr_save(wrong, "test/model", asr("Turn off the lights, please."), None)
    clip_asr_save(unsure, "test/model", asr("call Siobhan", -1.2, [0.9, 0.2]), None)
    clips_quality_refresh([agree, wrong, unsure, plain])
    order = ids_of(api, "ordering=priority")
    assert order == [wrong, unsure, agree, plain]
    detail = api.get(f"/api/entries/{unsure}?ordering=priority").json()
    assert (detail["prev_id"], detail["next_id"]) == (wrong, agree)
    assert api.get(f"/api/entries/{plain}?ordering=priority").json()["next_id"] is None
    assert ids_of(api, "ordering=priority&id_min=" + str(unsure)) == [unsure, plain]


def test_bulk_accept_takes_only_confident_agreeing_suggestions_and_records_history(alice, insert_clip, speech_blob):
    agree = insert_clip("turn on the lights", blob=speech_blob)
    differ = insert_clip("turn of the lights", blob=speech_blob)
    unsure = insert_clip("call siobhan", blob=speech_blob)
    bare = insert_clip("never transcribed", blob=speech_blob)
    clip_asr_save(agree, "m", asr("Turn on the lights."), None)
    clip_asr_save(differ, "m", asr("Turn off the lights."), None)
    clip_asr_save(unsure, "m", asr("Call Siobhan.", -0.1, [0.95, 0.3]), None)
    out = clips_accept_suggestions([agree, differ, unsure, bare], alice, AcceptRule())
    assert out["accepted"] == [agree]
    assert set(out["skipped"]) == {differ, unsure, bare}
    assert "disagrees" in out["skipped"][differ] and "probability" in out["skipped"][unsure]
    item = quality_inputs([agree])[0]
    assert item.transcript == "Turn on the lights."
    edits = ClipEdit.objects.using("s2s").filter(clip_id=agree)
    assert {(e.field, e.username) for e in edits} == {("transcript", "alice"), ("is_reviewed", "alice")}


def test_current_model_is_the_live_one_when_deployed(tmp_path, settings):
    bundled = asr_model_dir()
    assert (bundled / "model.bin").is_file()
    settings.S2S_LIVE_MODEL_DIR = str(tmp_path)
    assert asr_model_dir() == bundled  # no current model deployed yet
    from training_jobs.pipeline import deploy

    for name in ("v1", "v2"):
        (tmp_path / "exports" / name).mkdir(parents=True)
        for f in ("model.bin", "config.json", "tokenizer.json"):
            (tmp_path / "exports" / name / f).write_text(name)
    settings.S2S_LIVE_MODEL_DIR = str(tmp_path / "live")
    deploy.promote(tmp_path / "live", "v1", tmp_path / "exports" / "v1")
    assert asr_model_dir() == (tmp_path / "live" / "versions" / "v1").resolve()
    deploy.promote(tmp_path / "live", "v2", tmp_path / "exports" / "v2")
    assert asr_model_id(asr_model_dir()) == "versions/v2"  # a promotion changes the model id
