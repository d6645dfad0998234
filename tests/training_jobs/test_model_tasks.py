"""Export and promotion as background work: the API and the pages queue a Celery task (a real
worker subprocess here), answer 202 with a status URL that reports the stage and clips scored,
then the result or the refusal; one deployment action at a time (409 while the slot is held),
and a slot whose holder died frees itself.

The models are tiny random Whispers (see test_model_registry.py): their exports fail the
faster-whisper check, so promotion is refused unless forced, which is itself what is checked.
"""
import time

import pytest
import redis
from django.core.management import CommandError, call_command

from tests.conftest import tone
from tests.pipeline.training_fixtures import make_tiny_whisper
from tests.training_jobs.conftest import REDIS_TEST_URL, WORKER_LIVE_CHANNEL
from tests.training_jobs.processes import wait_for
from tests.training_jobs.registry_fixtures import make_snapshot, succeeded_run
from tests.training_jobs.test_model_registry import read_messages
from training_jobs import deploy_lock, services, tasks
from training_jobs.models import ModelEvent, ModelVersion
from training_jobs.pipeline import deploy

REFS = ["turn the music down", "open the window please", "call me back tomorrow"]


@pytest.fixture(autouse=True)
def free_slot(training_env):
    """Every test starts and ends with the deployment slot free (it lives in the test Redis)."""
    redis.Redis.from_url(REDIS_TEST_URL).delete(deploy_lock.KEY)
    yield
    redis.Redis.from_url(REDIS_TEST_URL).delete(deploy_lock.KEY)


@pytest.fixture
def worker_live(training_env, settings):
    """This process sees the worker's live directory, artifacts and channel (conftest.worker_env),
    emptied: the folder is the session's."""
    import shutil

    live = training_env["base"] / "live"
    shutil.rmtree(live, ignore_errors=True)
    settings.S2S_LIVE_MODEL_DIR = live
    settings.S2S_ARTIFACTS = training_env["artifacts"]
    settings.S2S_LIVE_CHANNEL = WORKER_LIVE_CHANNEL
    return settings


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return make_snapshot(tmp_path_factory.mktemp("snapshot"), REFS, [tone(1.0, 180 + 40 * i) for i in range(3)])


@pytest.fixture
def make_version(tmp_path, snapshot, worker_live):
    def make(name: str):
        snap, ids = snapshot
        model_dir = make_tiny_whisper(tmp_path / name / "model", seed=len(name))
        run = succeeded_run(tmp_path / name, model_dir, snap, ids, REFS, ["turn music down", "open window", "call back"],
                            REFS)
        return services.model_register_run(run)

    return make


def follow(api, status_url: str, timeout: float = 240) -> tuple[dict, list[dict]]:
    """Poll a task's status until it finishes; returns the last answer and every answer seen."""
    seen = []

    def finished():
        answer = api.get(status_url).json()
        seen.append(answer)
        return answer["state"] in ("SUCCESS", "FAILURE")

    wait_for(finished, timeout=timeout, interval=0.1, what=f"task {status_url}")
    return seen[-1], seen


@pytest.mark.django_db(transaction=True)
def test_promote_is_queued_refused_then_forced_with_one_action_at_a_time(worker, make_version, api, alice):
    first, second = make_version("a"), make_version("bb")
    listener = redis.Redis.from_url(REDIS_TEST_URL).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(WORKER_LIVE_CHANNEL)

    queued = api.post(f"/api/models/{first.name}/promote", {"quantization": "float32"}, format="json")
    assert queued.status_code == 202, queued.content
    started = queued.json()
    assert started["action"] == "promote" and started["version"] == first.name
    assert started["status_url"] == f"/api/models/tasks/{started['task_id']}"
    # The slot is taken when the task is queued: a second action is refused at once, nothing queued.
    busy = api.post(f"/api/models/{second.name}/export", {}, format="json")
    assert busy.status_code == 409 and busy.json()["code"] == "DeployBusy"
    assert "Another deployment action is running (promote " + first.name in busy.json()["detail"]
    assert busy.json()["running"]["task_id"] == started["task_id"]
    assert api.post("/api/models/rollback").status_code == 409
    assert api.get("/api/models/live").json()["action"]["version"] == first.name

    result, seen = follow(api, started["status_url"])
    assert result["state"] == "SUCCESS" and result["ok"] is False and result["code"] == "PromotionRefused"
    assert "before conversion" in result["error"] and result["version"] == first.name
    assert all(s["task_id"] == started["task_id"] for s in seen)
    first.refresh_from_db()
    assert first.status == "candidate" and first.export["quantization"] == "float32"
    assert first.export["verified"] is False and first.export["n"] == 3
    assert ModelEvent.objects.get(action="refused", version=first).user == alice  # the requester, via the task
    assert deploy.live_model_dir(services.live_root()) is None
    assert api.get("/api/models/live").json()["action"] is None  # the task gave the slot back

    for version in (first, second):
        queued = api.post(f"/api/models/{version.pk}/promote", {"force": True}, format="json")
        assert queued.status_code == 202
        result, _ = follow(api, queued.json()["status_url"])
        assert result["ok"] is True and result["step"] == "done"
        assert result["message"] == f"{version.name} is now live (forced)."
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("retired", "live")
    messages = read_messages(listener, 2)
    assert [(m["event"], m["version"]) for m in messages] == [("promoted", first.deploy_name),
                                                             ("promoted", second.deploy_name)]
    back = api.post("/api/models/rollback")  # fast: still in the request
    assert back.status_code == 200 and back.json() == {"live": first.deploy_name, "previous": second.deploy_name}
    listener.close()


@pytest.mark.django_db(transaction=True)
def test_the_pages_forms_and_promotemodel_enqueue_queue_the_same_tasks(worker, make_version, client, alice, capsys):
    first, second = make_version("a"), make_version("bb")
    call_command("promotemodel", first.name, "--force", "--enqueue")  # exports first: seconds of work
    task_id = capsys.readouterr().out.split("task ")[1].split()[0]
    assert deploy_lock.holder()["task_id"] == task_id
    with pytest.raises(CommandError, match="Another deployment action is running"):
        call_command("promotemodel", first.name, "--force")  # the terminal path takes the same slot
    wait_for(lambda: ModelVersion.objects.get(pk=first.pk).status == "live", timeout=240, what="the promotion")
    assert deploy.live_name(services.live_root()) == f"{first.name}-int8_float16"

    client.force_login(alice)
    done = client.post(f"/models/{second.pk}/export", {"quantization": "int8"}, follow=True).content.decode()
    assert f"Export of {second.name} queued" in done
    before, page, after = deploy_lock.holder(), client.get(f"/models/{second.pk}/").content.decode(), deploy_lock.holder()
    if before and after and after["token"] == before["token"]:  # running all along: the page points its script at the status
        assert f'data-status-url="/api/models/tasks/{before["task_id"]}"' in page
    wait_for(lambda: deploy_lock.holder() is None, timeout=240, what="the export task")
    second.refresh_from_db()
    assert second.export["quantization"] == "int8" and second.export["n"] == 3 and second.status == "candidate"


@pytest.mark.django_db
def test_the_task_body_reports_each_step_and_clip_then_the_result(make_version):
    """The Celery task's body (what the status URL shows): starting, exporting, verifying with
    1/3 .. 3/3 clips, switching; then ok and the message. With a live model, comparing too."""
    first, second = make_version("a"), make_version("bb")
    events = []
    result = services.model_action_execute("promote", first.pk, task_id="task-1", on_progress=events.append, force=True)
    assert result["ok"] is True and result["message"] == f"{first.name} is now live (forced)."
    steps = [e["step"] for e in events]
    assert steps[0] == "starting" and steps[-1] == "switching"
    assert [(e["done"], e["total"]) for e in events if e["step"] == "verifying" and e["total"]] == [(1, 3), (2, 3), (3, 3)]
    assert {e["version"] for e in events[1:]} == {first.name}
    assert deploy_lock.holder() is None

    events.clear()
    result = tasks.model_promote.apply(args=(second.pk,), kwargs={"force": True}).get()  # the task itself, eagerly
    assert result["ok"] is True and result["version"] == second.name
    events = []
    services.model_action_execute("export", second.pk, task_id="task-3", on_progress=events.append)
    assert "comparing" not in [e["step"] for e in events]  # exports do not compare
    third = make_version("ccc")
    services.model_action_execute("promote", third.pk, task_id="task-4", on_progress=events.append, force=True)
    compared = [e for e in events if e["step"] == "comparing" and e["total"]]
    assert compared[-1]["done"] == compared[-1]["total"] == 3  # the live model scored on the same clips


@pytest.mark.django_db
def test_one_action_at_a_time_and_a_dead_holders_slot_expires(make_version, api, settings):
    """A holder that died (SIGKILLed worker) stops refreshing: its slot expires after
    S2S_DEPLOY_LOCK_SECONDS and the next action goes through. Meanwhile every path refuses."""
    version = make_version("a")
    settings.S2S_DEPLOY_LOCK_SECONDS = 2
    assert deploy_lock.acquire("dead-worker", "promote", "run-0") is None

    refused = api.post(f"/api/models/{version.name}/promote", {"force": True}, format="json")
    assert refused.status_code == 409 and refused.json()["running"]["version"] == "run-0"
    assert api.post("/api/models/rollback").status_code == 409
    assert api.delete(f"/api/models/{version.pk}?confirm={version.name}").status_code == 409
    with pytest.raises(CommandError, match=r"Another deployment action is running \(promote run-0"):
        call_command("promotemodel", version.name, "--force")
    # A task whose slot expired while it was queued, and was taken by someone else: refused, not run.
    result = services.model_action_execute("export", version.pk, task_id="late-task")
    assert result["ok"] is False and result["code"] == "DeployBusy" and not version.export

    time.sleep(2.2)
    assert deploy_lock.holder() is None
    services.model_export(version=version)  # the terminal path, now free
    assert version.export["n"] == 3 and deploy_lock.holder() is None
    # A queued task's slot: the task confirms it (same token), and gives it back at the end.
    assert deploy_lock.acquire("queued-task", "export", version.name, task_id="queued-task", here=False) is None
    assert services.model_action_execute("export", version.pk, task_id="queued-task")["ok"] is True
    assert deploy_lock.holder() is None


@pytest.mark.django_db
def test_a_slot_held_by_a_killed_process_on_this_machine_is_taken_over_at_once(settings):
    import json
    import socket
    import subprocess
    import sys

    settings.S2S_DEPLOY_LOCK_SECONDS = 600
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = {"token": "killed", "action": "promote", "version": "run-0", "host": socket.gethostname(),
              "pid": gone.pid, "since": time.time()}
    redis.Redis.from_url(REDIS_TEST_URL).set(deploy_lock.KEY, json.dumps(record), ex=600)
    assert deploy_lock.acquire("next", "rollback")  is None  # not 10 minutes later: now
    assert deploy_lock.holder()["token"] == "next" and deploy_lock.holder()["pid"] > 0
    alive = {**record, "token": "alive", "pid": 1}  # a process that exists: its slot is respected
    redis.Redis.from_url(REDIS_TEST_URL).set(deploy_lock.KEY, json.dumps(alive), ex=600)
    assert deploy_lock.acquire("next", "rollback")["token"] == "alive"


@pytest.mark.django_db
def test_a_task_for_a_deleted_version_gives_the_slot_back(make_version):
    version = make_version("a")
    assert deploy_lock.acquire("t-gone", "promote", version.name, task_id="t-gone") is None
    version_id = version.pk
    version.delete()
    result = services.model_action_execute("promote", version_id, task_id="t-gone")
    assert result == {**result, "ok": False, "code": "NotFound"} and deploy_lock.holder() is None
