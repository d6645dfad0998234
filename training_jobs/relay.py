"""The Progress listener that makes a run visible: it persists metrics and log lines and publishes
them to the Channels group `run_<id>` (Redis channel layer), whichever process the run is in.

Throttled to at most `max_rate` events per second so a fast loop cannot flood browsers or the
database; stage changes, evaluation results and the final event are always sent, and a skipped
event is kept so `flush()` can send the latest one when the run ends.
"""
from __future__ import annotations

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.db.models import Max

from training_jobs.models import RunLogLine, RunMetric, RunStatus, TrainingRun
from training_jobs.pipeline.progress import Progress

logger = logging.getLogger(__name__)

METRIC_FIELDS = ("train_loss", "val_loss", "wer", "learning_rate", "samples_per_s", "gpu_memory_mb")

# Pipeline stage -> run status, applied only while the run is in one of FOLLOWS_STAGES: a run the
# user paused or is stopping keeps that status whatever the loop reports last.
STAGE_STATUS = {
    "preparing": RunStatus.PREPARING,
    "loading": RunStatus.TRAINING,
    "training": RunStatus.TRAINING,
    "evaluating": RunStatus.EVALUATING,
    "exporting": RunStatus.EVALUATING,
}
FOLLOWS_STAGES = (RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.TRAINING, RunStatus.EVALUATING)


def group_name(run_id: int) -> str:
    return f"run_{run_id}"


def publish(run_id: int, event_type: str, payload: dict) -> None:
    """Send one event to the run's group. A Redis outage is logged, never raised into training."""
    try:
        async_to_sync(get_channel_layer().group_send)(group_name(run_id), {"type": event_type, **payload})
    except Exception:  # noqa: BLE001 - a dashboard missing an event must not fail the run
        logger.exception("could not publish %s for run %s", event_type, run_id)


def publish_status(run: TrainingRun) -> None:
    publish(run.pk, "run.status", {"status": run.status, "error": run.error,
                                   "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at)})


def log_append(run_id: int, messages: list[str], level: str = "info") -> list[dict]:
    """Append lines with consecutive offsets. The run row is locked so the worker's relay and a
    web request (a button press) never hand out the same offset."""
    messages = [m for m in messages if m]
    if not messages:
        return []
    for attempt in range(3):
        try:
            with transaction.atomic():
                list(TrainingRun.objects.select_for_update().filter(pk=run_id).values_list("pk", flat=True))
                last = RunLogLine.objects.filter(run_id=run_id).aggregate(m=Max("offset"))["m"] or 0
                rows = [RunLogLine(run_id=run_id, offset=last + i, level=level, message=m[:10000])
                        for i, m in enumerate(messages, start=1)]
                RunLogLine.objects.bulk_create(rows)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    return [
        {"offset": r.offset, "level": r.level, "message": r.message, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for r in rows
    ]


def log_and_publish(run_id: int, message: str, level: str = "info") -> None:
    """One log line from a service (queued, pause requested, failed...), sent at once."""
    lines = log_append(run_id, [message], level)
    publish(run_id, "run.log", {"lines": lines})


class RunRelay:
    """Callable `ProgressCallback` for one task execution of one run."""

    def __init__(self, run_id: int, *, max_rate: float = 4.0):
        self.run_id = run_id
        self.min_interval = 1.0 / max_rate
        self._last_sent = float("-inf")
        self._last_stage: str | None = None
        self._pending: Progress | None = None
        self._log_buffer: list[str] = []
        self.sent = 0
        self._seq = 0

    def __call__(self, event: Progress) -> None:
        if event.message:
            self._log_buffer.append(event.message)
        important = (
            event.stage != self._last_stage
            or event.val_loss is not None
            or event.wer is not None
            or event.stage == "done"
        )
        if important or time.monotonic() - self._last_sent >= self.min_interval:
            self._emit(event)
        else:
            self._pending = event

    def log(self, message: str, level: str = "info") -> None:
        """A line that is not tied to a Progress event (control callbacks, task notes)."""
        self._flush_logs(extra=[message], level=level)

    def flush(self) -> None:
        """Send what throttling held back: the latest event and any buffered log lines."""
        if self._pending is not None:
            self._emit(self._pending)
        self._flush_logs()

    def _flush_logs(self, extra: list[str] | None = None, level: str = "info") -> None:
        messages, self._log_buffer = self._log_buffer + (extra or []), []
        if messages:
            publish(self.run_id, "run.log", {"lines": log_append(self.run_id, messages, level)})

    def _emit(self, event: Progress) -> None:
        self._pending = None
        self._last_sent = time.monotonic()
        self._flush_logs()
        data = event.as_dict()
        point = None
        if any(data[name] is not None for name in METRIC_FIELDS):
            metric = RunMetric.objects.create(
                run_id=self.run_id, stage=event.stage, step=event.step, total=event.total, epoch=event.epoch,
                time=event.time, **{name: data[name] for name in METRIC_FIELDS},
            )
            point = metric.as_dict()
        TrainingRun.objects.filter(pk=self.run_id).update(progress=data)
        if event.stage != self._last_stage:
            self._last_stage = event.stage
            self._follow_stage(event.stage)
        self.sent += 1
        # Increasing across task executions (a resumed run gets a new relay): milliseconds, bumped
        # when two events share one.
        self._seq = max(self._seq + 1, time.time_ns() // 1_000_000)
        publish(self.run_id, "run.progress", {"seq": self._seq, "progress": data, "metric": point})

    def _follow_stage(self, stage: str) -> None:
        status = STAGE_STATUS.get(stage)
        if status is None:
            return
        changed = (
            TrainingRun.objects.filter(pk=self.run_id, status__in=FOLLOWS_STAGES).exclude(status=status)
            .update(status=status)
        )
        if changed:
            publish_status(TrainingRun.objects.get(pk=self.run_id))


def _iso(value):
    return value.isoformat() if value else None
