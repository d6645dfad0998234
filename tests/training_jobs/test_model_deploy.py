"""The whole deployment on real weights: the bundled Whisper tiny.en, imported to transformers,
exported back with CTranslate2's converter, verified with faster-whisper on real speech, promoted
behind the guard, and followed by the example live app (docs/examples/live_app.py) over Redis.

A "worse" model is tiny.en with noise on its decoder's feed-forward weights (measured: test WER
rises from about 18 % to about 60 % on these clips), a real model that transcribes badly.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import soundfile as sf
import torch
from django.core.management import call_command

from tests.pipeline import whisper_fixtures
from tests.training_jobs.conftest import REDIS_TEST_URL, ROOT
from tests.training_jobs.registry_fixtures import make_snapshot, succeeded_run
from training_jobs import services
from training_jobs.models import ModelEvent, RunLogLine
from training_jobs.pipeline import deploy, evaluate
from training_jobs.pipeline.export import save_model
from training_jobs.pipeline.models import load_model_and_processor

speech_clips = whisper_fixtures.speech_clips
tiny_ct2_dir = whisper_fixtures.tiny_ct2_dir
tiny_hf_dir = whisper_fixtures.tiny_hf_dir
faster_whisper_tiny = whisper_fixtures.faster_whisper_tiny
reference_transcripts = whisper_fixtures.reference_transcripts

N_CLIPS = 4
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def test_clips(speech_clips):
    return [text for text, _ in speech_clips[:N_CLIPS]], [samples for _, samples in speech_clips[:N_CLIPS]]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory, test_clips):
    return make_snapshot(tmp_path_factory.mktemp("speech-snapshot"), *test_clips)


@pytest.fixture(scope="module")
def base_hyps(tiny_hf_dir, test_clips):
    model, processor = load_model_and_processor(tiny_hf_dir)
    return evaluate.transcribe(model, processor, test_clips[1])


@pytest.fixture(scope="module")
def worse_dir(tmp_path_factory, tiny_hf_dir):
    model, processor = load_model_and_processor(tiny_hf_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.model.decoder.layers:
            layer.fc2.weight.add_(0.02 * torch.randn(layer.fc2.weight.shape, generator=generator))
    return save_model(model, processor, tmp_path_factory.mktemp("worse") / "model", {"damaged": True})


@pytest.fixture
def register(training_env, tmp_path, settings, snapshot, test_clips, base_hyps, tiny_hf_dir):
    """A candidate from a succeeded run on `model_dir`, scored by the real evaluation. The test
    Redis, and a live directory and notification channel of this test's own."""
    settings.S2S_LIVE_MODEL_DIR = tmp_path / "live"
    settings.S2S_ARTIFACTS = tmp_path / "artifacts"
    settings.S2S_LIVE_CHANNEL = f"s2s:live-model:test-{tmp_path.name}-{os.getpid()}"

    def make(name, model_dir):
        if model_dir == tiny_hf_dir:  # the same weights as the base: copy it, the test may delete it
            model_dir = shutil.copytree(tiny_hf_dir, tmp_path / name / "model")
            new_hyps = base_hyps
        else:
            model, processor = load_model_and_processor(model_dir)
            new_hyps = evaluate.transcribe(model, processor, test_clips[1])
        snap, ids = snapshot
        run = succeeded_run(tmp_path / name, model_dir, snap, ids, test_clips[0], base_hyps, new_hyps,
                            base_model=str(tiny_hf_dir))
        return services.model_register_run(run)

    return make


def start_live_app(live_dir, probe_wav, channel):
    app = subprocess.Popen(
        [sys.executable, str(ROOT / "docs" / "examples" / "live_app.py"), "--live-dir", str(live_dir),
         "--redis-url", REDIS_TEST_URL, "--channel", channel, "--poll", "60", "--probe", str(probe_wav), "--max-seconds", "600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert next_event(app)["event"] == "subscribed"
    return app


def next_event(app) -> dict:
    line = app.stdout.readline()
    assert line, app.stderr.read()[-3000:]
    return json.loads(line)


@pytest.mark.django_db
def test_the_live_app_follows_real_promotions_and_a_rollback(register, tiny_hf_dir, test_clips, tmp_path,
                                                             reference_transcripts, settings):
    probe = tmp_path / "probe.wav"
    sf.write(probe, test_clips[1][0], 16000)
    first, second = register("a", tiny_hf_dir), register("b", tiny_hf_dir)
    app = start_live_app(services.live_root(), probe, settings.S2S_LIVE_CHANNEL)  # polls only every 60 s: Redis must wake it
    try:
        t0 = time.monotonic()
        services.model_promote(version=first, quantization="float16")
        first.refresh_from_db()
        # tiny.en's weights are float16 already: the export is exact, faster-whisper agrees
        assert first.export["verified"] is True and abs(first.export["gap"]) <= 0.005
        assert first.export["fw_wer"] == pytest.approx(first.metrics["wer"], abs=0.005)
        assert first.status == "live" and first.guard["live_version"].startswith("base model")
        loaded = next_event(app)
        assert loaded["version"] == first.deploy_name and loaded["from"] == "current"
        assert loaded["text"] == reference_transcripts[0].strip()  # it transcribes with the promoted model
        assert time.monotonic() - t0 < 120

        settings.S2S_EXPORT_QUANTIZATION = "float32"
        services.model_auto_deploy(second.pk)  # the automatic option promotes only a model that beats the live one
        second.refresh_from_db()
        assert second.status == "candidate" and "does not beat the live model" in second.note
        assert second.guard["live_wer"] == pytest.approx(second.guard["candidate_wer"])
        assert deploy.live_name(services.live_root()) == first.deploy_name

        services.model_promote(version=second, quantization="float32")  # same weights, same WER: not worse
        second.refresh_from_db()
        assert second.status == "live" and second.guard["live_version"] == first.deploy_name
        assert second.guard["live_wer"] == pytest.approx(second.guard["candidate_wer"])
        assert next_event(app)["version"] == second.deploy_name

        call_command("rollbackmodel")
        assert next_event(app)["version"] == first.deploy_name
        assert deploy.previous_name(services.live_root()) == second.deploy_name
    finally:
        app.kill()
        app.wait()


@pytest.mark.django_db
def test_a_worse_model_is_refused_kept_as_candidate_and_promoted_only_when_forced(register, tiny_hf_dir, worse_dir):
    good, worse = register("good", tiny_hf_dir), register("worse", worse_dir)
    assert worse.metrics["wer"] > worse.metrics["base_wer"] + 0.2
    services.model_promote(version=good, quantization="float16")

    services.model_auto_deploy(worse.pk)  # what a run with S2S_AUTO_DEPLOY does after it succeeds
    worse.refresh_from_db()
    assert worse.status == "candidate" and "is worse than the live model" in worse.note
    assert worse.guard["live_version"] == good.deploy_name and worse.guard["worse"] is True
    assert worse.guard["candidate_wer"] > worse.guard["live_wer"] + 0.2
    assert worse.export["fw_wer"] == worse.guard["candidate_wer"]
    assert deploy.live_name(services.live_root()) == good.deploy_name  # untouched
    refusal = ModelEvent.objects.get(action="refused", version=worse)
    assert refusal.detail["live_wer"] == worse.guard["live_wer"]

    with pytest.raises(services.PromotionRefused, match="worse than the live model"):
        services.model_promote(version=worse)
    call_command("promotemodel", worse.name, "--force")
    worse.refresh_from_db()
    assert worse.status == "live" and worse.note.startswith("Forced live over:")
    assert "is worse than the live model" in worse.note
    forced = ModelEvent.objects.get(action="forced", version=worse)
    assert forced.detail["previous"] == good.deploy_name and forced.detail["worse"] is True

    services.model_auto_deploy(good.pk)  # it beats the (forced) live model: the automatic option promotes it
    good.refresh_from_db()
    assert good.status == "live" and good.guard["live_version"] == worse.deploy_name and good.note == ""
    assert good.guard["candidate_wer"] < good.guard["live_wer"]
    assert RunLogLine.objects.filter(run=good.run, message=f"Model {good.name} is now live ({good.deploy_name})").exists()

    call_command("rollbackmodel")  # back to the forced one, in one step
    worse.refresh_from_db()
    assert worse.status == "live" and deploy.live_name(services.live_root()) == worse.deploy_name
    assert deploy.previous_name(services.live_root()) == good.deploy_name
