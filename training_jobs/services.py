"""Writes for training runs: start, pause, resume, stop, and the bodies of the three Celery tasks.

A run goes queued -> preparing (`run_prepare`, data queue: snapshot the reviewed clips) ->
training/evaluating (`run_train`, gpu queue) -> succeeded (`run_finish`, data queue: mark the clips
trained). Paused and stopping are the user's; stopped and failed runs can be resumed and continue
from their last checkpoint. Each task body is idempotent: a redelivered task (worker lost) looks
at the row and carries on or does nothing.

The pipeline itself is plugged in through `settings.S2S_TRAINING_PIPELINE` and imported lazily,
so Django starts (and the web process runs) without torch.
"""
from __future__ import annotations

import dataclasses
import logging
import time
import traceback
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from training_jobs import control
from training_jobs.models import ACTIVE_STATUSES, RunStatus, TrainingRun
from training_jobs.pipeline.config import TrainConfig
from training_jobs.pipeline.progress import RunStopped
from training_jobs.relay import RunRelay, log_and_publish, publish_status

logger = logging.getLogger(__name__)

# Any constant: the PostgreSQL advisory lock that serialises "is a run active? then start one".
_SLOT_LOCK_ID = 5_253_201


class RunError(Exception):
    """Base of the errors a person can act on; the API maps them to status codes."""

    status_code = 400


class InvalidTrainConfig(RunError, ValueError):
    """A training option is unknown or out of range."""


class RunConflict(RunError):
    """Another run holds the training slot (S2S_MAX_ACTIVE_RUNS)."""

    status_code = 409

    def __init__(self, message: str, active_run_id: int | None = None):
        super().__init__(message)
        self.active_run_id = active_run_id


class RunControlUnavailable(RunError):
    """Redis (run control) does not answer: nothing was changed."""

    status_code = 503


class RunStateError(RunError):
    """The run cannot do that in its current status (e.g. pause a finished run)."""

    status_code = 409


# -- the pipeline, behind one seam --------------------------------------------------------------

class RealPipeline:
    """Adapts `training_jobs.pipeline` to the three hooks the tasks call. Returns plain JSON."""

    def prepare(self, *, config: TrainConfig, s2s_path: str, out_dir: Path, on_progress) -> dict:
        from training_jobs.pipeline.data import snapshot_from_database

        # One call shared with `starttraining`: undecodable clips are listed as excluded, and the
        # base model's tokenizer checks every label fits Whisper's 448-token limit.
        info = snapshot_from_database(s2s_path, config, out_dir, cache_dir=model_cache_dir(),
                                      max_seconds=settings.S2S_MAX_CLIP_SECONDS, on_progress=on_progress)
        # The manifest (every clip's hash per split) stays in the snapshot folder, not in the row.
        out = {k: v for k, v in to_jsonable(info).items() if k != "manifest"}
        out.setdefault("path", str(out_dir))
        out["clip_ids"] = snapshot_clip_ids(info.manifest)
        return out

    def train(self, *, config: TrainConfig, snapshot_dir: Path, output_dir: Path, checkpoint_dir: Path,
              on_progress, control) -> dict:
        from training_jobs.pipeline.train import train

        result = train(config, snapshot_dir, output_dir, checkpoint_dir=checkpoint_dir,
                       cache_dir=model_cache_dir(), on_progress=on_progress, control=control)
        return to_jsonable(result)

    def finish(self, *, s2s_path: str, clip_ids: list[int], backup_dir: Path) -> dict:
        from training_jobs.pipeline.source import mark_trained

        return {"backup": str(mark_trained(s2s_path, clip_ids, backup_dir))}


def model_cache_dir() -> Path:
    """Imported/converted base models, shared by every run (and by `starttraining`)."""
    return Path(settings.S2S_ARTIFACTS) / "cache"


def pipeline_get():
    target = import_string(settings.S2S_TRAINING_PIPELINE)
    return target() if isinstance(target, type) else target


def run_dirs(run_id: int) -> dict[str, Path]:
    """Where a run's files go. Under S2S_ARTIFACTS so a separate GPU machine can share them."""
    root = Path(settings.S2S_ARTIFACTS)
    return {
        "snapshot": root / "checkpoints" / f"run_{run_id}" / "snapshot",
        "checkpoints": root / "checkpoints" / f"run_{run_id}" / "ckpt",
        "output": root / "trained" / f"run_{run_id}",
        "backups": Path(settings.VAR_DIR) / "backups",
    }


def config_build(data: dict[str, Any] | TrainConfig | None) -> TrainConfig:
    """A validated TrainConfig from user input (empty -> every default)."""
    if isinstance(data, TrainConfig):
        config = data
    else:
        try:
            config = TrainConfig.from_dict(dict(data or {}))
        except (TypeError, ValueError) as e:
            raise InvalidTrainConfig(str(e)) from None
    try:
        return config.validate()
    except (TypeError, ValueError) as e:
        raise InvalidTrainConfig(str(e)) from None


# -- user actions -------------------------------------------------------------------------------

def run_start(*, config: dict[str, Any] | TrainConfig | None = None, user=None) -> TrainingRun:
    """Queue a new run, unless S2S_MAX_ACTIVE_RUNS runs are active already (RunConflict)."""
    config = config_build(config)
    with transaction.atomic():
        _lock_training_slot()
        active_runs = TrainingRun.objects.filter(status__in=ACTIVE_STATUSES).order_by("id")
        if active_runs.count() >= settings.S2S_MAX_ACTIVE_RUNS:
            active = active_runs.first()
            raise RunConflict(f"run {active.pk} is {active.status}; stop it or wait for it to finish", active.pk)
        run = TrainingRun.objects.create(config=config.to_dict(), created_by=_user_or_none(user))
        _control_set(run.pk, control.RUNNING)
        _enqueue(run, "run_prepare")
    log_and_publish(run.pk, f"Run {run.pk} queued by {_name(user)}")
    return run


def run_pause(*, run_id: int, user=None) -> TrainingRun:
    with transaction.atomic():
        run = _locked(run_id)
        if run.status not in (RunStatus.TRAINING, RunStatus.EVALUATING):
            raise RunStateError(f"run {run_id} is {run.status}; only a training run can be paused")
        _control_set(run_id, control.PAUSED)
        run.status = RunStatus.PAUSED
        run.save(update_fields=["status", "updated_at"])
    publish_status(run)
    log_and_publish(run_id, f"Pause requested by {_name(user)}")
    return run


def run_resume(*, run_id: int, user=None) -> TrainingRun:
    """Paused: continue the loop. Stopped or failed: queue the run again; training continues from
    its latest checkpoint (and the data snapshot is reused when it was made)."""
    with transaction.atomic():
        _lock_training_slot()
        run = _locked(run_id)
        if run.status == RunStatus.PAUSED:
            _control_set(run_id, control.RUNNING)
            run.status = RunStatus.EVALUATING if run.progress.get("stage") == "evaluating" else RunStatus.TRAINING
            run.save(update_fields=["status", "updated_at"])
            note = f"Resume requested by {_name(user)}"
        elif run.status in (RunStatus.STOPPED, RunStatus.FAILED):
            active = TrainingRun.objects.filter(status__in=ACTIVE_STATUSES).exclude(pk=run_id)
            if active.count() >= settings.S2S_MAX_ACTIVE_RUNS:
                first = active.order_by("id").first()
                raise RunConflict(f"run {first.pk} is {first.status}; stop it before resuming run {run_id}", first.pk)
            _control_set(run_id, control.RUNNING)
            run.status, run.error, run.finished_at = RunStatus.QUEUED, "", None
            run.save(update_fields=["status", "error", "finished_at", "updated_at"])
            _enqueue(run, "run_train" if run.snapshot_path else "run_prepare")
            note = f"Run {run_id} queued again by {_name(user)}; it continues from its last checkpoint"
        else:
            raise RunStateError(f"run {run_id} is {run.status}; only a paused, stopped or failed run can be resumed")
    publish_status(run)
    log_and_publish(run_id, note)
    return run


def run_stop(*, run_id: int, user=None) -> TrainingRun:
    """Ask the run to stop. The loop writes a checkpoint and ends as `stopped` (resumable).

    A queued run stops at once (its task, when it comes, finds it stopped and does nothing). A run
    still `stopping` after S2S_STALE_RUN_SECONDS without progress has lost its worker: stopping it
    again marks it stopped, so the training slot is not held forever.
    """
    with transaction.atomic():
        run = _locked(run_id)
        if run.status in ACTIVE_STATUSES:
            _control_set(run_id, control.STOPPED)
        if run.status == RunStatus.QUEUED:
            run.status, run.finished_at, note = RunStatus.STOPPED, timezone.now(), "stopped before it started"
        elif run.status == RunStatus.STOPPING:
            idle_s = _seconds_without_progress(run)
            if idle_s < settings.S2S_STALE_RUN_SECONDS:
                raise RunStateError(f"run {run_id} is already stopping (last progress {idle_s:.0f} s ago); "
                                    f"if its worker is gone, stop again after {settings.S2S_STALE_RUN_SECONDS} s")
            run.status, run.finished_at = RunStatus.STOPPED, timezone.now()
            note = f"marked stopped: no progress for {idle_s:.0f} s, its worker is gone"
        elif run.status in ACTIVE_STATUSES:
            run.status, note = RunStatus.STOPPING, "requested"
        else:
            raise RunStateError(f"run {run_id} is {run.status}; it cannot be stopped")
        run.save(update_fields=["status", "finished_at", "updated_at"])
    log_and_publish(run_id, f"Stop by {_name(user)}: {note}")
    publish_status(run)
    return run


# -- task bodies (called by training_jobs.tasks) ------------------------------------------------

def run_prepare_execute(run_id: int, *, task_id: str | None = None) -> None:
    """Snapshot the reviewed clips for this run, then queue training."""
    run = TrainingRun.objects.get(pk=run_id)
    if _superseded(run, task_id):
        return
    if run.status not in (RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.STOPPING):
        logger.info("run %s is %s: nothing to prepare", run_id, run.status)
        return
    if _stop_requested(run_id):
        return _mark_stopped(run_id, "Stopped before data preparation")
    _set_status(run_id, RunStatus.PREPARING, started=True)
    relay = RunRelay(run_id)
    dirs = run_dirs(run_id)
    try:
        info = pipeline_get().prepare(config=_config_of(run), s2s_path=str(settings.S2S_DATABASE),
                                      out_dir=dirs["snapshot"], on_progress=relay)
    except Exception as e:  # noqa: BLE001 - any failure ends the run with its message, visibly
        relay.flush()
        return _mark_failed(run_id, e)
    relay.flush()
    clip_ids = list(info.pop("clip_ids", []) or [])
    TrainingRun.objects.filter(pk=run_id).update(snapshot_path=str(info.get("path") or dirs["snapshot"]),
                                                 snapshot=info, clip_ids=clip_ids)
    if _stop_requested(run_id):
        return _mark_stopped(run_id, "Stopped after data preparation; resume to train")
    counts = ", ".join(f"{k} {v}" for k, v in (info.get("counts") or {}).items())
    excluded = len(info.get("excluded") or [])
    relay.log(f"Data snapshot ready: {len(clip_ids)} clips ({counts or 'no split counts'}; {excluded} excluded)")
    with transaction.atomic():
        _enqueue(TrainingRun.objects.get(pk=run_id), "run_train")


def run_train_execute(run_id: int, *, task_id: str | None = None) -> None:
    """Train (continuing from a checkpoint when one exists), then queue the finishing step."""
    run = TrainingRun.objects.get(pk=run_id)
    if _superseded(run, task_id):
        return
    if run.status not in ACTIVE_STATUSES:
        logger.info("run %s is %s: nothing to train", run_id, run.status)
        return
    if _stop_requested(run_id):
        return _mark_stopped(run_id, "Stopped before training")
    _set_status(run_id, RunStatus.TRAINING, started=True, only_from=(RunStatus.QUEUED, RunStatus.PREPARING))
    relay = RunRelay(run_id)
    run_control = control.RedisRunControl(
        run_id, on_pause=lambda: relay.log("Training loop paused"), on_resume=lambda: relay.log("Training loop resumed")
    )
    dirs = run_dirs(run_id)
    try:
        result = pipeline_get().train(
            config=_config_of(run), snapshot_dir=Path(run.snapshot_path or dirs["snapshot"]),
            output_dir=dirs["output"], checkpoint_dir=dirs["checkpoints"], on_progress=relay, control=run_control,
        )
    except RunStopped as e:
        relay.flush()
        return _mark_stopped(run_id, f"Stopped: {e}" if str(e) else "Stopped; checkpoint written, resume to continue")
    except Exception as e:  # noqa: BLE001
        relay.flush()
        return _mark_failed(run_id, e)
    relay.flush()
    if result.get("status") == "stopped":
        return _mark_stopped(run_id, "Stopped; checkpoint written, resume to continue")
    artifacts = {k: v for k, v in result.items() if k not in ("status", "metrics", "history", "trained_clip_ids")}
    update = {"metrics": result.get("metrics") or {}, "artifacts": artifacts, "status": RunStatus.EVALUATING}
    if result.get("trained_clip_ids") is not None:
        update["clip_ids"] = list(result["trained_clip_ids"])
    with transaction.atomic():
        TrainingRun.objects.filter(pk=run_id).update(**update)
        run = TrainingRun.objects.get(pk=run_id)
        _enqueue(run, "run_finish")
    publish_status(run)
    relay.log(f"Training finished ({result.get('status', 'done')}); marking clips as trained")


def run_finish_execute(run_id: int, *, task_id: str | None = None) -> None:
    """Mark the clips the run trained on (`is_trained = 1`, after a backup), then succeed."""
    run = TrainingRun.objects.get(pk=run_id)
    if _superseded(run, task_id):
        return
    if run.status in (RunStatus.SUCCEEDED, RunStatus.STOPPED, RunStatus.FAILED):
        return
    if run.marked_trained_at is None:
        try:
            done = pipeline_get().finish(s2s_path=str(settings.S2S_DATABASE), clip_ids=list(run.clip_ids),
                                         backup_dir=run_dirs(run_id)["backups"])
        except Exception as e:  # noqa: BLE001
            return _mark_failed(run_id, e)
        artifacts = {**run.artifacts, **(done or {})}
        TrainingRun.objects.filter(pk=run_id).update(marked_trained_at=timezone.now(), artifacts=artifacts)
        log_and_publish(run_id, f"Marked {len(run.clip_ids)} clips as trained")
    # Log before the status: whoever sees the final status finds the whole log.
    log_and_publish(run_id, "Run succeeded")
    _set_status(run_id, RunStatus.SUCCEEDED, finished=True)


# -- helpers ------------------------------------------------------------------------------------

def _enqueue(run: TrainingRun, task_name: str) -> None:
    """Queue after commit (a task must never read an uncommitted row); the id is saved first."""
    from training_jobs import tasks

    task = getattr(tasks, task_name)
    task_id = str(uuid.uuid4())
    TrainingRun.objects.filter(pk=run.pk).update(task_id=task_id)
    run.task_id = task_id
    transaction.on_commit(partial(task.apply_async, args=(run.pk,), task_id=task_id))


def _control_set(run_id: int, state: str) -> None:
    """Inside the caller's transaction: if Redis is down the row change is rolled back too."""
    try:
        control.control_set(run_id, state)
    except redis.RedisError as e:
        raise RunControlUnavailable(f"run control (Redis at REDIS_URL) is unavailable: {e}") from None


def _superseded(run: TrainingRun, task_id: str | None) -> bool:
    """A task that is not the run's latest (e.g. queued before a stop and a resume) does nothing:
    at most one task works on a run, so two loops never share a checkpoint directory."""
    if task_id and run.task_id and task_id != run.task_id:
        logger.warning("run %s: task %s superseded by %s, skipping", run.pk, task_id, run.task_id)
        return True
    return False


def _lock_training_slot() -> None:
    """Serialise slot checks. SQLite already does (IMMEDIATE transactions take the write lock)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SLOT_LOCK_ID])


def _locked(run_id: int) -> TrainingRun:
    return TrainingRun.objects.select_for_update().get(pk=run_id)


def _seconds_without_progress(run: TrainingRun) -> float:
    """Since the last progress event or status change (the stop request itself counts)."""
    last = max(float(run.progress.get("time") or 0), run.updated_at.timestamp())
    return max(0.0, time.time() - last)


def _stop_requested(run_id: int) -> bool:
    return control.control_get(run_id) == control.STOPPED


def _set_status(run_id: int, status: str, *, started=False, finished=False, only_from=None) -> None:
    runs = TrainingRun.objects.filter(pk=run_id)
    if only_from is not None:
        runs = runs.filter(status__in=only_from)
    fields: dict[str, Any] = {"status": status}
    if finished:
        fields["finished_at"] = timezone.now()
    changed = runs.update(**fields)
    if started:
        TrainingRun.objects.filter(pk=run_id, started_at__isnull=True).update(started_at=timezone.now())
    if changed:
        publish_status(TrainingRun.objects.get(pk=run_id))


def _mark_stopped(run_id: int, note: str) -> None:
    log_and_publish(run_id, note)
    _set_status(run_id, RunStatus.STOPPED, finished=True)


def _mark_failed(run_id: int, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}"
    logger.error("run %s failed: %s", run_id, message, exc_info=exc)
    TrainingRun.objects.filter(pk=run_id).update(error=message)
    tb = "".join(traceback.format_exception(exc)).rstrip().splitlines()[-20:]
    log_and_publish(run_id, "Run failed: " + message, level="error")
    log_and_publish(run_id, "\n".join(tb), level="error")
    _set_status(run_id, RunStatus.FAILED, finished=True)


def _config_of(run: TrainingRun) -> TrainConfig:
    return TrainConfig.from_dict(run.config)


def _user_or_none(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _name(user) -> str:
    return user.get_username() if _user_or_none(user) else "system"


def to_jsonable(value: Any) -> Any:
    """Dataclasses, Paths and numpy scalars from the pipeline, as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def snapshot_clip_ids(manifest: dict) -> list[int]:
    """Every clip id a snapshot holds, across its splits (rows are [id, content_hash])."""
    return sorted(int(row[0]) for rows in manifest.get("splits", {}).values() for row in rows)
