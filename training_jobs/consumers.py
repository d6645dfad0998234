"""Live view of one run: `/ws/runs/<id>/`.

On connect the client gets a snapshot (status, progress, the whole metric history, the last log
lines), then every event the relay publishes to the group `run_<id>`. Clients may send
`{"action": "pause" | "resume" | "stop"}`, which calls the same services as the REST buttons.
Anonymous connections are refused (close code 4401).
"""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from training_jobs import selectors, services
from training_jobs.models import TrainingRun
from training_jobs.relay import group_name
from training_jobs.serializers import RunSerializer

ACTIONS = {"pause": services.run_pause, "resume": services.run_resume, "stop": services.run_stop}
LOG_TAIL = 200


class RunConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=4401)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.last_seq = 0
        self.group = group_name(self.run_id)
        # Join first, then read: an event published in between arrives after the snapshot
        # (possibly twice; the page de-duplicates by log offset and event seq).
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = await self._snapshot()
        if snapshot is None:
            await self.send_json({"type": "error", "message": f"no run {self.run_id}"})
            await self.close(code=4404)
            return
        await self.send_json(snapshot)

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        action = content.get("action") if isinstance(content, dict) else None
        if action not in ACTIONS:
            await self.send_json({"type": "error", "message": f"unknown action {action!r} (pause, resume, stop)"})
            return
        error = await self._act(action)
        if error:
            await self.send_json({"type": "error", "action": action, "message": error})

    # Group events, named after their type ("run.progress" -> run_progress).
    async def run_progress(self, event):
        # channels_redis can hand a process-specific channel's messages over out of order
        # (django/channels_redis#89, #151). A late event's progress is stale, so the client only
        # gets its chart point; progress itself never goes backwards.
        if event["seq"] <= self.last_seq:
            if event.get("metric"):
                await self.send_json({"type": "metric", "seq": event["seq"], "metric": event["metric"]})
            return
        self.last_seq = event["seq"]
        await self.send_json({"type": "progress", "seq": event["seq"], "progress": event["progress"],
                              "metric": event.get("metric")})

    async def run_log(self, event):
        await self.send_json({"type": "log", "lines": event["lines"]})

    async def run_status(self, event):
        await self.send_json({"type": "status", **{k: v for k, v in event.items() if k != "type"}})

    @database_sync_to_async
    def _snapshot(self) -> dict | None:
        try:
            run = selectors.run_get(self.run_id)
        except TrainingRun.DoesNotExist:
            return None
        return {
            "type": "snapshot",
            "run": RunSerializer(run).data,
            "history": selectors.run_metrics(run.pk),
            "log": selectors.run_log_tail(run.pk, LOG_TAIL),
        }

    @database_sync_to_async
    def _act(self, action: str) -> str | None:
        try:
            ACTIONS[action](run_id=self.run_id, user=self.user)
        except TrainingRun.DoesNotExist:
            return f"no run {self.run_id}"
        except services.RunError as e:
            return str(e)
        return None
