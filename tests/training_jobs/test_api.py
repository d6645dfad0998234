"""REST for runs without a worker: validation, logs by offset, status, permissions."""
from datetime import timedelta

import pytest
from django.utils import timezone

from training_jobs import control, relay, services
from training_jobs.models import RunLogLine, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_queue(monkeypatch):
    """Runs here are only rows: nothing is sent to a broker (the worker tests do that for real)."""
    sent = []
    monkeypatch.setattr(services, "_enqueue", lambda run, name: sent.append((run.pk, name)))
    return sent


def test_status_is_idle_before_any_run(api):
    assert api.get("/api/train/status").json() == {"id": None, "status": "idle"}


def test_empty_body_starts_a_run_with_every_default(api, no_queue, training_env):
    response = api.post("/api/train", {}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["config"]["learning_rate"] == 1e-5 and body["config"]["batch_size"] == 16
    assert body["created_by"] == "alice" and body["status"] == "queued"
    assert no_queue == [(body["id"], "run_prepare")]
    assert api.get("/api/train/status").json()["id"] == body["id"]


@pytest.mark.parametrize("payload, field", [
    ({"learning_rate": 1}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"precision": "fp8"}, "precision"),
    ({"bogus": 1}, "bogus"),
])
def test_it_answers_400_naming_the_bad_option(api, no_queue, payload, field):
    response = api.post("/api/train", payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not TrainingRun.objects.exists()


def test_it_answers_400_when_the_splits_leave_too_little_to_train(api, no_queue, training_env):
    response = api.post("/api/train", {"val_split": 0.5, "test_split": 0.45}, format="json")

    assert response.status_code == 400
    assert "val_split + test_split" in response.json()["detail"]


def test_logs_by_offset_return_only_new_lines_and_the_next_offset(api):
    run = TrainingRun.objects.create(config={})
    relay.log_append(run.pk, [f"line {i}" for i in range(1, 6)])

    first = api.get("/api/train/logs?offset=0").json()
    later = api.get("/api/train/logs?offset=3").json()
    relay.log_append(run.pk, ["line 6", "line 7"])
    newest = api.get(f"/api/train/logs?offset={first['next_offset']}").json()

    assert [line["message"] for line in first["lines"]] == [f"line {i}" for i in range(1, 6)]
    assert first["next_offset"] == 5 and first["run"] == run.pk
    assert [line["offset"] for line in later["lines"]] == [4, 5]
    assert [line["message"] for line in newest["lines"]] == ["line 6", "line 7"] and newest["next_offset"] == 7
    assert api.get("/api/train/logs?offset=7").json()["lines"] == []
    assert api.get("/api/train/logs?offset=-1").status_code == 400
    assert api.get("/api/train/logs?run=999999").status_code == 404


def test_actions_in_the_wrong_state_answer_409_and_unknown_runs_404(api):
    done = TrainingRun.objects.create(config={}, status="succeeded")

    assert api.post(f"/api/runs/{done.pk}/pause").status_code == 409
    assert api.post(f"/api/runs/{done.pk}/stop").status_code == 409
    assert api.post(f"/api/runs/{done.pk}/resume").status_code == 409
    assert api.post("/api/runs/999999/stop").status_code == 404


def test_resume_of_a_stopped_run_answers_409_while_another_run_holds_the_slot(api, no_queue, training_env):
    stopped = TrainingRun.objects.create(config={}, status="stopped")
    TrainingRun.objects.create(config={}, status="training")

    response = api.post(f"/api/runs/{stopped.pk}/resume")

    assert response.status_code == 409 and "stop it before resuming" in response.json()["detail"]


def test_run_list_and_detail(api):
    runs = [TrainingRun.objects.create(config={"epochs": i}) for i in (1, 2)]
    listing = api.get("/api/runs").json()
    assert [r["id"] for r in listing["results"]] == [runs[1].pk, runs[0].pk]
    assert api.get(f"/api/runs/{runs[0].pk}").json()["history"] == []


def test_anonymous_callers_get_403(bob):
    assert bob.get("/api/train/status").status_code == 403
    assert bob.post("/api/train", {}, format="json").status_code == 403


def test_stop_of_a_queued_run_ends_it_at_once(api, no_queue, training_env):
    run_id = api.post("/api/train", {}, format="json").json()["id"]

    response = api.post(f"/api/runs/{run_id}/stop")

    assert response.json()["status"] == "stopped"
    assert control.control_get(run_id) == control.STOPPED
    services.run_prepare_execute(run_id)  # the task, arriving late, finds it stopped
    assert TrainingRun.objects.get(pk=run_id).status == "stopped"
    assert not TrainingRun.objects.get(pk=run_id).snapshot_path


def test_a_second_stop_frees_the_slot_of_a_run_whose_worker_is_gone(api, no_queue, training_env, settings):
    long_ago = timezone.now() - timedelta(seconds=settings.S2S_STALE_RUN_SECONDS + 60)
    run = TrainingRun.objects.create(config={}, status="training", progress={"stage": "training", "time": 0})
    TrainingRun.objects.filter(pk=run.pk).update(updated_at=long_ago)

    assert api.post(f"/api/runs/{run.pk}/stop").json()["status"] == "stopping"
    too_soon = api.post(f"/api/runs/{run.pk}/stop")
    TrainingRun.objects.filter(pk=run.pk).update(updated_at=long_ago)
    forced = api.post(f"/api/runs/{run.pk}/stop")

    assert too_soon.status_code == 409 and "already stopping" in too_soon.json()["detail"]
    assert forced.json()["status"] == "stopped"
    assert "its worker is gone" in RunLogLine.objects.filter(run=run).last().message
    assert api.post("/api/train", {}, format="json").status_code == 201


def test_a_task_that_is_not_the_runs_latest_does_nothing(training_env):
    run = TrainingRun.objects.create(config={}, status="queued", task_id="the-latest")

    services.run_prepare_execute(run.pk, task_id="an-older-duplicate")
    services.run_train_execute(run.pk, task_id="an-older-duplicate")

    run.refresh_from_db()
    assert run.status == "queued" and run.started_at is None


def test_when_redis_is_down_start_answers_503_and_creates_nothing(api, no_queue, training_env, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = api.post("/api/train", {}, format="json")

    assert response.status_code == 503 and "Redis" in response.json()["detail"]
    assert not TrainingRun.objects.exists()


def test_admin_lists_and_shows_runs(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "", "root-pass-123")
    client.force_login(admin)
    run = TrainingRun.objects.create(config={"epochs": 3}, status="failed", error="ValueError: boom")
    relay.log_append(run.pk, ["first line"])

    assert client.get("/admin/training_jobs/trainingrun/").status_code == 200
    detail = client.get(f"/admin/training_jobs/trainingrun/{run.pk}/change/")
    assert detail.status_code == 200 and "ValueError: boom" in detail.content.decode()
    assert "first line" in detail.content.decode()
