"""A run end to end through REST, a real Celery worker (both queues) and real Redis control,
with the stand-in pipeline body (real Progress events, real checkpoints, seconds not hours)."""
import json
import sqlite3
import time

import pytest

from tests.training_jobs.processes import wait_for
from training_jobs.models import RunLogLine, RunMetric, TrainingRun

pytestmark = pytest.mark.django_db(databases=["default", "s2s"], transaction=True)


def status_of(run_id):
    return TrainingRun.objects.get(pk=run_id).status


def step_of(run_id):
    return TrainingRun.objects.get(pk=run_id).progress.get("step", 0)


def wait_status(run_id, *statuses, timeout=15):
    return wait_for(lambda: status_of(run_id) in statuses and status_of(run_id), timeout=timeout,
                    what=f"run {run_id} to be {'/'.join(statuses)} (is {status_of(run_id)})")


def log_messages(run_id):
    return list(RunLogLine.objects.filter(run_id=run_id).order_by("offset").values_list("message", flat=True))


def test_run_goes_from_queued_to_succeeded_and_marks_its_clips_trained(api, worker, s2s_clips, training_env):
    reviewed = s2s_clips(3, reviewed=1)
    unreviewed = s2s_clips(2, reviewed=0)

    response = api.post("/api/train", {"max_steps": 20, "learning_rate": 2e-5}, format="json")

    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    assert response.json()["config"]["learning_rate"] == 2e-5
    wait_status(run_id, "succeeded", "failed")
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == "succeeded", run.error
    assert run.clip_ids == reviewed
    assert run.metrics == {"wer": 0.1, "base_wer": 0.3}
    assert run.artifacts["model_dir"].endswith(f"trained/run_{run_id}")
    assert run.started_at and run.finished_at and run.marked_trained_at
    conn = sqlite3.connect(training_env["s2s"])
    flags = dict(conn.execute("SELECT id, is_trained FROM s2s_training_data"))
    assert [flags[i] for i in reviewed] == [1, 1, 1] and [flags[i] for i in unreviewed] == [0, 0]
    # The history a reload shows: train loss points and the validation/WER points, in step order.
    history = api.get(f"/api/runs/{run_id}").json()["history"]
    steps = [p["step"] for p in history if p["stage"] == "training"]
    assert steps == sorted(steps) and steps[-1] == 20
    assert [p["step"] for p in history if p["val_loss"] is not None] == [10, 20]
    assert any(p["wer"] == 0.1 and p["stage"] == "evaluating" for p in history)
    messages = log_messages(run_id)
    assert messages[0].startswith(f"Run {run_id} queued by alice")
    assert "snapshot of 3 clips" in messages and "Run succeeded" == messages[-1]


def test_second_start_answers_409_while_a_run_is_active(api, worker, s2s_clips):
    s2s_clips(2)
    first = api.post("/api/train", {"max_steps": 200}, format="json")
    assert first.status_code == 201

    second = api.post("/api/train", {}, format="json")

    assert second.status_code == 409
    assert second.json()["active_run"] == first.json()["id"]
    assert TrainingRun.objects.count() == 1


def test_pause_reaches_the_training_loop_within_two_seconds_and_resume_continues(api, worker, s2s_clips):
    s2s_clips(2)
    run_id = api.post("/api/train", {"max_steps": 400}, format="json").json()["id"]
    wait_for(lambda: step_of(run_id) >= 3, what="training steps")

    t0 = time.monotonic()
    assert api.post(f"/api/runs/{run_id}/pause").json()["status"] == "paused"
    wait_for(lambda: "Training loop paused" in log_messages(run_id), timeout=5, what="the loop to pause")
    reached_s = time.monotonic() - t0
    print(f"pause reached the loop in {reached_s:.2f} s")

    assert reached_s < 2.0
    held = step_of(run_id)
    time.sleep(1.0)
    assert step_of(run_id) == held and status_of(run_id) == "paused"
    assert api.post(f"/api/runs/{run_id}/resume").json()["status"] == "training"
    wait_for(lambda: step_of(run_id) > held + 2, timeout=5, what="steps after resume")
    assert "Training loop resumed" in log_messages(run_id)


def test_stop_reaches_the_loop_within_two_seconds_and_resume_continues_from_the_checkpoint(
        api, worker, s2s_clips, training_env):
    s2s_clips(2)
    run_id = api.post("/api/train", {"max_steps": 60}, format="json").json()["id"]
    wait_for(lambda: step_of(run_id) >= 12, what="training past the first checkpoint")

    t0 = time.monotonic()
    assert api.post(f"/api/runs/{run_id}/stop").json()["status"] == "stopping"
    wait_status(run_id, "stopped", timeout=5)
    stopped_s = time.monotonic() - t0
    print(f"stop request to status stopped (checkpoint written) in {stopped_s:.2f} s")

    assert stopped_s < 2.0
    ckpt_dir = training_env["artifacts"] / "checkpoints" / f"run_{run_id}" / "ckpt"
    stopped_at = json.loads((ckpt_dir / "state.json").read_text())["step"]
    assert stopped_at >= 12
    assert api.post(f"/api/runs/{run_id}/stop").status_code == 409  # already stopped

    assert api.post(f"/api/runs/{run_id}/resume").json()["status"] == "queued"
    wait_status(run_id, "succeeded", "failed")

    assert status_of(run_id) == "succeeded"
    first, second = [json.loads(line) for line in (ckpt_dir / "steps.jsonl").read_text().splitlines()]
    assert first == list(range(1, stopped_at + 1))
    assert second == list(range(stopped_at + 1, 61))  # continued, not restarted
    assert f"resuming from checkpoint at step {stopped_at}" in log_messages(run_id)


def test_stop_right_after_start_ends_the_run_before_training(api, worker, s2s_clips):
    s2s_clips(1)
    run_id = api.post("/api/train", {"max_steps": 100}, format="json").json()["id"]
    assert api.post(f"/api/runs/{run_id}/stop").json()["status"] in ("stopped", "stopping")
    wait_status(run_id, "stopped")
    assert step_of(run_id) < 100
    assert not RunMetric.objects.filter(run_id=run_id, step=100).exists()
    # The worker may or may not have picked the task up yet: both ends are logged.
    assert any(m.startswith("Stopped") or m.endswith("stopped before it started") for m in log_messages(run_id))


def test_a_pipeline_error_fails_the_run_with_its_message(api, worker, s2s_clips):
    s2s_clips(0)
    run_id = api.post("/api/train", {}, format="json").json()["id"]
    wait_status(run_id, "failed")
    run = TrainingRun.objects.get(pk=run_id)
    assert run.error == "ValueError: no reviewed clips to train on"
    assert "Run failed: ValueError: no reviewed clips to train on" in log_messages(run_id)
    # The slot is free again.
    assert api.get("/api/train/status").json()["status"] == "failed"


def test_stop_while_paused_wakes_the_loop_and_stops_it(api, worker, s2s_clips):
    s2s_clips(2)
    run_id = api.post("/api/train", {"max_steps": 400}, format="json").json()["id"]
    wait_for(lambda: step_of(run_id) >= 3, what="training steps")
    api.post(f"/api/runs/{run_id}/pause")
    wait_for(lambda: "Training loop paused" in log_messages(run_id), timeout=5, what="the loop to pause")

    t0 = time.monotonic()
    api.post(f"/api/runs/{run_id}/stop")
    wait_status(run_id, "stopped", timeout=5)

    assert time.monotonic() - t0 < 2.0
    assert "Training loop resumed" not in log_messages(run_id)


def test_a_killed_worker_process_gives_the_run_back_and_it_finishes_from_its_checkpoint(
        api, worker, s2s_clips, training_env):
    import psutil

    s2s_clips(2)
    run_id = api.post("/api/train", {"max_steps": 60}, format="json").json()["id"]
    wait_for(lambda: step_of(run_id) >= 15, what="training past the first checkpoint")

    for child in psutil.Process(worker.pid).children():  # the prefork pool: one of them runs the loop
        child.kill()

    wait_status(run_id, "succeeded", "failed", timeout=30)
    assert status_of(run_id) == "succeeded"
    ckpt_dir = training_env["artifacts"] / "checkpoints" / f"run_{run_id}" / "ckpt"
    (resumed,) = [json.loads(line) for line in (ckpt_dir / "steps.jsonl").read_text().splitlines()]
    assert resumed[0] in (11, 21, 31) and resumed[-1] == 60  # continued from a checkpoint, not step 1
    assert any(m.startswith("resuming from checkpoint at step") for m in log_messages(run_id))
