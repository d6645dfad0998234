"""The default pipeline adapter (`services.RealPipeline`) through the three task bodies, with the
real data prep, training loop and mark-trained on a tiny random Whisper (real tokenizer).

The task bodies run in this process, one after the other, exactly as the worker would call them;
only the hand-over between them (the broker) is replaced by a list, so that the session's worker
(which runs the stand-in pipeline) does not pick them up.
"""
import sqlite3

import pytest

from tests.conftest import S2S
from tests.pipeline.training_fixtures import SENTENCES, make_tiny_whisper
from training_jobs import services
from training_jobs.models import ModelVersion, RunLogLine, RunMetric, TrainingRun


@pytest.fixture
def handed_over(monkeypatch):
    queue = []
    monkeypatch.setattr(services, "_enqueue", lambda run, name: queue.append(name))
    return queue


@pytest.mark.slow
@S2S
def test_real_pipeline_prepares_trains_and_marks_clips_through_the_task_bodies(
        settings, training_env, insert_clip, s2s_db, handed_over, alice, tmp_path):
    settings.S2S_TRAINING_PIPELINE = "training_jobs.services.RealPipeline"
    settings.S2S_ARTIFACTS = tmp_path / "artifacts"
    reviewed = [insert_clip(SENTENCES[i], is_reviewed=1, seconds=1.0) for i in range(8)]
    unreviewed = insert_clip("not reviewed yet", is_reviewed=0)
    model_dir = make_tiny_whisper(tmp_path / "tiny")

    run = services.run_start(config={"base_model": str(model_dir), "batch_size": 2, "epochs": 1, "max_steps": 2,
                                     "val_split": 0.2, "test_split": 0.2, "learning_rate": 1e-3}, user=alice)
    services.run_prepare_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "preparing" and handed_over == ["run_prepare", "run_train"], run.error
    assert sorted(run.clip_ids) == reviewed and run.snapshot["manifest_hash"]
    services.run_train_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "evaluating" and handed_over[-1] == "run_finish", run.error
    services.run_finish_execute(run.pk)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert set(run.clip_ids) <= set(reviewed) and run.clip_ids
    assert "wer" in str(run.metrics) and run.artifacts["model_dir"]
    assert run.artifacts["backup"].endswith(".db")
    conn = sqlite3.connect(s2s_db)
    flags = dict(conn.execute("SELECT id, is_trained FROM s2s_training_data"))
    assert all(flags[i] == 1 for i in run.clip_ids) and flags[unreviewed] == 0
    assert RunMetric.objects.filter(run=run, train_loss__isnull=False).exists()
    assert RunLogLine.objects.filter(run=run, message="Run succeeded").exists()
    version = ModelVersion.objects.get(run=run)  # the registry has the model, as a candidate
    assert (version.name, version.status, version.model_dir) == (f"run-{run.pk}", "candidate", run.artifacts["model_dir"])
    assert version.metrics["test_clips"] == run.metrics["test_clips"] and version.size_bytes > 0
    assert RunLogLine.objects.filter(run=run, message=f"Model registered as run-{run.pk} (candidate)").exists()
    assert TrainingRun.objects.get(pk=run.pk).progress["stage"] in ("done", "exporting", "evaluating")
