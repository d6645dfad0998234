"""The websocket `/ws/runs/<id>/` against the real ASGI app and the real Redis channel layer."""
import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from s2s_trainer.asgi import application
from training_jobs import control, services
from training_jobs.models import TrainingRun
from training_jobs.pipeline.progress import Progress
from training_jobs.relay import RunRelay

pytestmark = pytest.mark.django_db(databases=["default", "s2s"], transaction=True)


@pytest.fixture(autouse=True)
async def close_executor_connections():
    """The async ORM and sync_to_async open connections in asgiref's executor thread; close them,
    or PostgreSQL refuses to drop the test database at the end."""
    yield
    await sync_to_async(connections.close_all)()


@sync_to_async
def session_cookie(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def connect(run_id, user=None) -> tuple[WebsocketCommunicator, bool, object]:
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if user is not None:
        headers.append((b"cookie", f"sessionid={await session_cookie(user)}".encode()))
    comm = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)
    connected, code = await comm.connect(timeout=5)
    return comm, connected, code


async def receive_until(comm, predicate, timeout=15.0) -> list[dict]:
    """Every message up to and including the first one matching predicate."""
    messages, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching message in {timeout}s; got {[m.get('type') for m in messages]}")
        message = await comm.receive_json_from(timeout=left)
        messages.append(message)
        if predicate(message):
            return messages


async def test_anonymous_websocket_is_rejected(training_env):
    run = await TrainingRun.objects.acreate(config={})
    comm, connected, code = await connect(run.pk)
    await comm.disconnect()
    assert connected is False and code == 4401


async def test_late_subscriber_gets_the_snapshot_then_live_events_in_order(alice, worker, s2s_clips):
    await sync_to_async(s2s_clips)(2)
    run = await sync_to_async(services.run_start)(config={"max_steps": 40}, user=alice)

    async def step():
        return (await TrainingRun.objects.aget(pk=run.pk)).progress.get("step", 0)

    deadline = time.monotonic() + 15
    while await step() < 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    comm, connected, _ = await connect(run.pk, alice)
    assert connected

    snapshot = await comm.receive_json_from(timeout=5)
    messages = await receive_until(comm, lambda m: m["type"] == "status" and m["status"] == "succeeded")
    await comm.disconnect()

    assert snapshot["type"] == "snapshot"
    assert snapshot["run"]["id"] == run.pk and snapshot["run"]["status"] == "training"
    assert snapshot["run"]["progress"]["step"] >= 10
    assert max(p["step"] for p in snapshot["history"]) >= 10  # the curve so far, not only new points
    assert snapshot["log"][0]["message"].startswith(f"Run {run.pk} queued by alice")
    progress = [m for m in messages if m["type"] == "progress"]
    seqs = [m["seq"] for m in progress]
    assert seqs == sorted(set(seqs)), "progress events out of order or repeated"
    steps = [m["progress"]["step"] for m in progress]
    assert steps == sorted(steps) and steps[-1] == 40
    offsets = [line["offset"] for m in messages if m["type"] == "log" for line in m["lines"]]
    assert offsets == sorted(set(offsets)) and offsets[0] > snapshot["log"][-1]["offset"] - 1
    assert [m["status"] for m in messages if m["type"] == "status"][-2:] == ["evaluating", "succeeded"]


async def test_websocket_actions_call_the_same_services_as_rest(alice, training_env):
    run = await TrainingRun.objects.acreate(config={}, status="training")
    comm, connected, _ = await connect(run.pk, alice)
    assert connected
    assert (await comm.receive_json_from(timeout=5))["type"] == "snapshot"

    await comm.send_json_to({"action": "pause"})
    paused = await receive_until(comm, lambda m: m["type"] == "status")
    await comm.send_json_to({"action": "pause"})
    refused = await receive_until(comm, lambda m: m["type"] == "error")
    await comm.send_json_to({"action": "explode"})
    unknown = await receive_until(comm, lambda m: m["type"] == "error")
    await comm.send_json_to({"action": "stop"})
    stopping = await receive_until(comm, lambda m: m["type"] == "status")
    await comm.disconnect()

    assert paused[-1]["status"] == "paused"
    assert "only a training run can be paused" in refused[-1]["message"]
    assert "unknown action" in unknown[-1]["message"]
    assert stopping[-1]["status"] == "stopping"
    assert (await TrainingRun.objects.aget(pk=run.pk)).status == "stopping"
    assert await sync_to_async(control.control_get)(run.pk) == control.STOPPED


async def test_relay_throttles_to_four_events_a_second_but_keeps_stage_changes_evaluations_and_the_last(
        alice, training_env):
    run = await TrainingRun.objects.acreate(config={}, status="training")
    comm, connected, _ = await connect(run.pk, alice)
    assert connected
    await comm.receive_json_from(timeout=5)
    relay = RunRelay(run.pk)

    def loop():
        relay(Progress("training", step=0, total=60))
        for i in range(1, 61):
            relay(Progress("training", step=i, total=60, train_loss=1.0 / i,
                           **({"val_loss": 0.5, "wer": 0.2} if i == 30 else {})))
            time.sleep(0.025)  # 40 events/s from the loop
        relay.flush()

    started = time.monotonic()
    thread = threading.Thread(target=loop)
    thread.start()
    messages = await receive_until(comm, lambda m: m["type"] == "progress" and m["progress"]["step"] == 60)
    elapsed = time.monotonic() - started
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    await comm.disconnect()

    steps = [m["progress"]["step"] for m in messages if m["type"] == "progress"]
    assert steps[0] == 0 and steps[-1] == 60 and 30 in steps
    assert steps == sorted(steps)
    assert len(steps) <= 4 * elapsed + 3, f"{len(steps)} events in {elapsed:.1f}s"
    points = await sync_to_async(lambda: list(TrainingRun.objects.get(pk=run.pk).metric_points.values("step", "wer")))()
    assert {"step": 30, "wer": 0.2} in points and points[-1]["step"] == 60


async def test_an_idle_subscriber_still_gets_events_after_six_quiet_seconds(alice, training_env):
    """A real step can take longer than redis-py's default 5 s read timeout; the socket must live."""
    run = await TrainingRun.objects.acreate(config={}, status="training")
    comm, connected, _ = await connect(run.pk, alice)
    assert connected
    await comm.receive_json_from(timeout=5)

    await asyncio.sleep(6)
    await sync_to_async(RunRelay(run.pk))(Progress("training", step=7, total=10, train_loss=0.5))
    message = await comm.receive_json_from(timeout=5)
    await comm.disconnect()

    assert message["type"] == "progress" and message["progress"]["step"] == 7


async def test_a_late_progress_event_only_adds_its_chart_point(alice, training_env):
    """channels_redis may deliver a group's messages out of order: progress must not go back."""
    from channels.layers import get_channel_layer

    from training_jobs.relay import group_name

    run = await TrainingRun.objects.acreate(config={}, status="training")
    comm, connected, _ = await connect(run.pk, alice)
    assert connected
    assert (await comm.receive_json_from(timeout=5))["type"] == "snapshot"
    layer = get_channel_layer()
    for seq, step in ((10, 2), (12, 3), (11, 1)):
        await layer.group_send(group_name(run.pk), {
            "type": "run.progress", "seq": seq, "progress": {"step": step}, "metric": {"step": step, "train_loss": 1.0},
        })
    got = [await comm.receive_json_from(timeout=5) for _ in range(3)]
    await comm.disconnect()
    assert [(m["type"], m["seq"]) for m in got] == [("progress", 10), ("progress", 12), ("metric", 11)]
    assert got[2]["metric"]["step"] == 1
