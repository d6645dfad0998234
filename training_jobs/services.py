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
from contextlib import contextmanager
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
    version = model_register_run(TrainingRun.objects.get(pk=run_id))
    if version is not None:
        log_and_publish(run_id, f"Model registered as {version.name} (candidate)")
    # Log before the status: whoever sees the final status finds the whole log.
    log_and_publish(run_id, "Run succeeded")
    _set_status(run_id, RunStatus.SUCCEEDED, finished=True)
    if version is not None and settings.S2S_AUTO_DEPLOY:
        from training_jobs import tasks

        tasks.model_auto_deploy.delay(version.pk)


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


# -- model registry and live deployment ---------------------------------------------------------
#
# register (after a run) -> export (CTranslate2 + faster-whisper verification) -> promote (guard,
# atomic switch in S2S_LIVE_MODEL_DIR, Redis + marker notification) -> rollback. The filesystem
# steps are `pipeline.deploy`; the scoring is `pipeline.ct2_eval`; this section decides and records.

class ModelError(RunError):
    """A registry or deployment action cannot be done; nothing live was changed."""


class PromotionRefused(ModelError):
    """The candidate is worse than the live model on the same clips (force to override)."""

    status_code = 409


class DeployBusy(ModelError):
    """Another export, promotion, rollback or deletion holds the deployment slot."""

    status_code = 409

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


class DeployLockUnavailable(ModelError):
    """Redis (the deployment slot) does not answer: nothing was started."""

    status_code = 503


# A holder pushes the slot's expiry back at most this often (deploy_lock: each scored clip asks).
_HEARTBEAT_S = 5.0


@contextmanager
def deployment_slot(action: str, version_name: str = "", token: str | None = None):
    """Hold the one deployment slot (training_jobs.deploy_lock) for the block; yields `beat()`,
    which a long step calls to say it is alive. With `token` (a task id the slot was taken for at
    enqueue time) it confirms that slot, or takes it again if it expired while the task was queued."""
    from training_jobs import deploy_lock

    mine = token or uuid.uuid4().hex
    try:
        current = deploy_lock.holder() if token else None
        claimed = current is not None and current.get("token") == token and \
            deploy_lock.refresh(token, claim=current) == deploy_lock.HELD
        if not claimed:
            holder = deploy_lock.acquire(mine, action, version_name, task_id=token or "")
            if holder is not None:
                raise DeployBusy(deploy_busy_message(holder), holder)
    except redis.RedisError as e:
        raise DeployLockUnavailable(f"Redis (the deployment lock) does not answer: {e}; nothing was started") from None
    last = time.monotonic()

    def beat() -> None:
        nonlocal last
        if time.monotonic() - last >= _HEARTBEAT_S:
            last = time.monotonic()
            try:
                deploy_lock.refresh(mine)
            except redis.RedisError as e:
                logger.warning("deployment lock not refreshed: %s", e)

    try:
        yield beat
    finally:
        try:
            deploy_lock.release(mine)
        except redis.RedisError as e:  # it expires by itself
            logger.warning("deployment lock not released: %s", e)


def deploy_busy_message(holder: dict) -> str:
    what = f"{holder.get('action', 'a deployment action')} {holder.get('version') or ''}".strip()
    since = time.strftime("%H:%M:%S", time.localtime(holder.get("since") or time.time()))
    return f"Another deployment action is running ({what}, since {since}); wait for it to finish."


def _beating(beat, on_clip):
    """on_clip that also keeps the deployment slot alive."""
    def report(done: int, total: int) -> None:
        beat()
        if on_clip is not None:
            on_clip(done, total)
    return report


def _step(on_step, beat, name: str) -> None:
    beat()
    if on_step is not None:
        on_step(name)


def live_root() -> Path:
    return Path(settings.S2S_LIVE_MODEL_DIR)


def live_model_path() -> Path | None:
    """The live model's CTranslate2 directory per settings (None when nothing was promoted yet)."""
    from training_jobs.pipeline.deploy import live_model_dir

    return live_model_dir(live_root())


def model_register_run(run: TrainingRun):
    """A candidate ModelVersion for a succeeded run's model (None when the run made no Whisper
    directory, e.g. a stand-in pipeline). Idempotent: a redelivered finish finds the same row."""
    import json

    from training_jobs.models import ModelVersion
    from training_jobs.pipeline.deploy import dir_size

    model_dir = Path(run.artifacts.get("model_dir") or "")
    if not (model_dir / "config.json").is_file():
        return None
    existing = ModelVersion.objects.filter(run=run).first()
    if existing:
        return existing
    m = run.metrics or {}
    clips = []
    eval_json = Path((run.artifacts.get("report_paths") or {}).get("eval_json") or "")
    if eval_json.is_file():
        report = json.loads(eval_json.read_text(encoding="utf-8"))
        clips = [{"id": c["id"], "reference": c["reference"], "text": c["new"], "wer": c["new_wer"],
                  "base_text": c["base"], "base_wer": c["base_wer"]} for c in report.get("clips", [])]
    return ModelVersion.objects.create(
        name=f"run-{run.pk}", run=run, base_model=run.config.get("base_model") or "", model_dir=str(model_dir),
        snapshot_path=run.snapshot_path, snapshot_hash=run.artifacts.get("snapshot_hash") or "",
        language=run.config.get("language") or "en", size_bytes=dir_size(model_dir), clip_results=clips,
        metrics={"wer": m.get("new_wer"), "cer": m.get("new_cer"), "base_wer": m.get("base_wer"),
                 "base_cer": m.get("base_cer"), "test_clips": m.get("test_clips")},
    )


def model_test_rows(version) -> list[tuple[int, Any, str]]:
    """(clip id, samples, reference) of the version's test split, read from its data snapshot."""
    from training_jobs.pipeline.data import load_snapshot, split_rows

    if not version.snapshot_path or not Path(version.snapshot_path).is_dir():
        raise ModelError(f"{version.name}: its data snapshot ({version.snapshot_path or 'none'}) is gone; "
                         "the test clips cannot be scored")
    dataset, _ = load_snapshot(version.snapshot_path)
    return split_rows(dataset["test"])


def model_export(*, version, quantization: str | None = None, user=None, on_clip=None, on_step=None,
                 lock_token: str | None = None):
    """Export and verify (below), holding the deployment slot (DeployBusy when another action runs)."""
    with deployment_slot("export", version.name, lock_token) as beat:
        return _model_export(version=version, quantization=quantization, user=user,
                             on_clip=_beating(beat, on_clip), on_step=partial(_step, on_step, beat))


def _model_export(*, version, quantization: str | None, user, on_clip, on_step):
    """Convert to CTranslate2 (ctranslate2's own TransformersConverter) and verify the result:
    faster-whisper on the test split must not score more than 0.5 WER points worse than the
    transformers model (see ct2_eval.verify_export for why one-sided).
    Both scores (and faster-whisper's per-clip text) are recorded, verified or not."""
    from training_jobs.models import ModelEvent
    from training_jobs.pipeline import ct2_eval
    from training_jobs.pipeline.deploy import dir_size
    from training_jobs.pipeline.export import QUANTIZATIONS, ExportError, export_ct2

    quantization = quantization or settings.S2S_EXPORT_QUANTIZATION
    if quantization not in QUANTIZATIONS:
        raise ModelError(f"unknown quantization {quantization!r}; use one of {', '.join(QUANTIZATIONS)}")
    out_dir = Path(settings.S2S_ARTIFACTS) / "exports" / f"{version.name}-{quantization}"
    on_step("exporting")
    try:
        export_ct2(version.model_dir, out_dir, quantization=quantization)
    except ExportError as e:
        raise ModelError(str(e)) from None
    rows = model_test_rows(version)
    on_step("verifying")
    reference_wer = version.metrics.get("wer")
    if reference_wer is None:  # no transformers score recorded: measure it on the same rows now
        reference_wer = _transformers_wer(version, rows)
    check = ct2_eval.verify_export(out_dir, rows, reference_wer, version.language, on_clip=on_clip)
    version.export = {"quantization": quantization, "ct2_dir": str(out_dir), "size_bytes": dir_size(out_dir), **check}
    version.save(update_fields=["export"])
    ModelEvent.objects.create(version=version, version_name=version.name, action=ModelEvent.Action.EXPORTED,
                              user=_user_or_none(user), detail={k: v for k, v in version.export.items() if k != "clips"})
    return version


def _transformers_wer(version, rows) -> float:
    from training_jobs.pipeline import evaluate
    from training_jobs.pipeline.models import load_model_and_processor

    model, processor = load_model_and_processor(version.model_dir)
    hyps = evaluate.transcribe(model, processor, [r[1] for r in rows], language=version.language)
    return evaluate.error_rates([r[2] for r in rows], hyps, version.language)["wer"]


def model_guard(version, on_clip=None, on_step=None) -> dict:
    """Candidate vs live on the candidate's test clips, both with faster-whisper.

    With no live model deployed yet, the live app still runs the base model: the run's own base
    vs new evaluation (transformers, same clips, same greedy decoding and features) stands in. The live score is cached in
    `version.guard` per live version name (versions/<name> never changes once deployed).
    """
    from training_jobs.pipeline import ct2_eval
    from training_jobs.pipeline.deploy import live_model_dir

    live_dir = live_model_dir(live_root())
    candidate_wer = version.export.get("fw_wer")
    if live_dir is None:  # like with like: both from the run's transformers evaluation
        live_wer, live = version.metrics.get("base_wer"), "base model (nothing deployed yet)"
        candidate_wer = version.metrics.get("wer")
    elif version.guard.get("live_version") == live_dir.name and version.guard.get("live_wer") is not None:
        live_wer, live = version.guard["live_wer"], live_dir.name
    elif live_dir.name == version.deploy_name:
        live_wer, live = candidate_wer, live_dir.name
    else:
        rows = model_test_rows(version)
        if on_step is not None:
            on_step("comparing")
        live_wer = ct2_eval.score_ct2(ct2_eval.load_ct2(live_dir), rows, version.language, on_clip).wer
        live = live_dir.name
    worse = candidate_wer is not None and live_wer is not None and candidate_wer > live_wer
    guard = {"live_version": live, "live_wer": live_wer, "candidate_wer": candidate_wer,
             "clips": version.metrics.get("test_clips") or version.export.get("n"), "worse": worse}
    version.guard = guard
    version.save(update_fields=["guard"])
    return guard


def model_promote(*, version, force: bool = False, user=None, quantization: str | None = None, on_clip=None,
                  on_step=None, must_beat: bool = False, lock_token: str | None = None):
    """Promote (below) holding the deployment slot (DeployBusy when another action runs).
    `on_step(name)` names each stage: exporting, verifying, comparing, switching."""
    with deployment_slot("promote", version.name, lock_token) as beat:
        return _model_promote(version=version, force=force, user=user, quantization=quantization,
                              on_clip=_beating(beat, on_clip), on_step=partial(_step, on_step, beat), must_beat=must_beat)


def _model_promote(*, version, force: bool, user, quantization: str | None, on_clip, on_step, must_beat: bool):
    """Make `version` the live model. Exports first when needed; refuses (PromotionRefused, recorded)
    when the export failed verification or the candidate is worse than the live model on the
    same clips (with `must_beat`: not strictly better), unless `force` (then the override is
    recorded with the numbers). `on_clip(done, total)` reports the faster-whisper scoring clip by
    clip (the long part)."""
    from training_jobs.models import ModelEvent, ModelStatus, ModelVersion
    from training_jobs.pipeline import deploy

    if not version.export.get("ct2_dir") or not Path(version.export["ct2_dir"]).is_dir() or (
            quantization and quantization != version.export.get("quantization")):
        _model_export(version=version, quantization=quantization, user=user, on_clip=on_clip, on_step=on_step)
    guard = model_guard(version, on_clip=on_clip, on_step=on_step)
    reasons = []
    if not version.export.get("verified"):
        reasons.append(f"the export scored {_pct(version.export.get('fw_wer'))} WER with faster-whisper against "
                       f"{_pct(version.export.get('transformers_wer'))} before conversion (more than 0.5 points worse)")
    if guard["worse"]:
        reasons.append(f"test WER {_pct(guard['candidate_wer'])} is worse than the live model "
                       f"{guard['live_version']}'s {_pct(guard['live_wer'])} on the same {guard['clips']} clips")
    elif must_beat and not _beats(guard):
        reasons.append(f"test WER {_pct(guard['candidate_wer'])} does not beat the live model "
                       f"{guard['live_version']}'s {_pct(guard['live_wer'])} on the same {guard['clips']} clips")
    if reasons and not force:
        reason = "; ".join(reasons)
        version.note = f"Not promoted: {reason}"
        version.save(update_fields=["note"])
        ModelEvent.objects.create(version=version, version_name=version.name, action=ModelEvent.Action.REFUSED,
                                  user=_user_or_none(user), detail={"reason": reason, **guard})
        raise PromotionRefused(f"{version.name} not promoted: {reason} (use force to promote anyway)")
    on_step("switching")
    try:
        switch = deploy.promote(live_root(), version.deploy_name, version.export["ct2_dir"],
                                event={"model": version.name, "by": _name(user)})
    except (deploy.DeployError, OSError) as e:
        raise ModelError(f"promotion of {version.name} failed before the switch: {e}") from None
    with transaction.atomic():
        now = timezone.now()
        ModelVersion.objects.filter(status=ModelStatus.LIVE).exclude(pk=version.pk).update(
            status=ModelStatus.RETIRED, retired_at=now)
        version.status, version.promoted_at, version.retired_at = ModelStatus.LIVE, now, None
        version.note = f"Forced live over: {'; '.join(reasons)}" if reasons else ""
        version.save(update_fields=["status", "promoted_at", "retired_at", "note"])
        action = ModelEvent.Action.FORCED if reasons else ModelEvent.Action.PROMOTED
        ModelEvent.objects.create(version=version, version_name=version.name, action=action, user=_user_or_none(user),
                                  detail={"previous": switch.previous, "reasons": reasons, **guard})
    live_notify("promoted", version=switch.live, previous=switch.previous, model=version.name)
    return version


def model_rollback(*, user=None):
    """Back to the previous live model in one atomic switch; registry statuses follow. Fast, so it
    runs in the request, but holds the deployment slot like the rest (DeployBusy)."""
    with deployment_slot("rollback"):
        return _model_rollback(user=user)


def _model_rollback(*, user):
    from training_jobs.models import ModelEvent, ModelStatus, ModelVersion
    from training_jobs.pipeline import deploy

    try:
        switch = deploy.rollback(live_root(), event={"by": _name(user)})
    except deploy.DeployError as e:
        raise ModelError(str(e)) from None
    back = _version_deployed_as(switch.live)
    with transaction.atomic():
        now = timezone.now()
        ModelVersion.objects.filter(status=ModelStatus.LIVE).update(status=ModelStatus.RETIRED, retired_at=now)
        if back is not None:
            ModelVersion.objects.filter(pk=back.pk).update(status=ModelStatus.LIVE, promoted_at=now, retired_at=None)
        ModelEvent.objects.create(version=back, version_name=back.name if back else switch.live,
                                  action=ModelEvent.Action.ROLLED_BACK, user=_user_or_none(user),
                                  detail={"live": switch.live, "from": switch.previous})
    live_notify("rolled_back", version=switch.live, previous=switch.previous, model=back.name if back else None)
    return switch


def model_delete(*, version, confirm: str, user=None) -> None:
    """Delete a version (row, transformers directory, exports) after the caller typed its name.
    The live model and the rollback backup cannot be deleted."""
    if confirm != version.name:
        raise ModelError(f"type the version name ({version.name}) to confirm the deletion")
    with deployment_slot("delete", version.name):
        _model_delete(version=version, user=user)


def _model_delete(*, version, user) -> None:
    import shutil

    from training_jobs.models import ModelEvent
    from training_jobs.pipeline import deploy

    root = live_root()
    if version.deploy_name in (deploy.live_name(root), deploy.previous_name(root)):
        raise ModelError(f"{version.name} is deployed (live or the rollback backup); promote another model first")
    try:
        deploy.remove_version(root, version.deploy_name)
    except deploy.DeployError as e:
        raise ModelError(str(e)) from None
    for path in (version.export.get("ct2_dir"), version.model_dir):
        if path and Path(path).is_dir():
            shutil.rmtree(path, ignore_errors=True)
    ModelEvent.objects.create(version=None, version_name=version.name, action=ModelEvent.Action.DELETED,
                              user=_user_or_none(user), detail={"model_dir": version.model_dir})
    version.delete()


def model_auto_deploy(version_id: int) -> None:
    """After a successful run (S2S_AUTO_DEPLOY): export and promote when it beats the live model;
    otherwise it stays a candidate and its note says why."""
    from training_jobs.models import ModelVersion

    version = ModelVersion.objects.get(pk=version_id)
    try:
        model_promote(version=version, must_beat=True)
    except ModelError as e:
        version.refresh_from_db()
        if not version.note:
            version.note = f"Not promoted: {e}"
            version.save(update_fields=["note"])
        if version.run_id:
            log_and_publish(version.run_id, f"Model {version.name} kept as a candidate: {e}")
        return
    if version.run_id:
        log_and_publish(version.run_id, f"Model {version.name} is now live ({version.deploy_name})")


# -- export and promotion as background work -----------------------------------------------------
#
# Scoring the test split with faster-whisper takes a minute or more on a CPU: the page and the API
# take the deployment slot, queue a Celery task (queue `data`: the machine with S2S_LIVE_MODEL_DIR)
# and answer 202; the task reports its stage and clips scored as Celery task state.

MODEL_TASKS = {"export": "model_export", "promote": "model_promote"}


def model_action_enqueue(action: str, *, version, user=None, **options) -> str:
    """Take the deployment slot for a new task id and queue the task; returns the task id.
    DeployBusy (409) when another action holds the slot: nothing is queued then."""
    from training_jobs import deploy_lock, tasks

    if action not in MODEL_TASKS:
        raise ValueError(f"unknown model action {action!r}")
    task_id = str(uuid.uuid4())
    try:
        holder = deploy_lock.acquire(task_id, action, version.name, task_id=task_id, here=False)
    except redis.RedisError as e:
        raise DeployLockUnavailable(f"Redis (the deployment lock) does not answer: {e}; nothing was started") from None
    if holder is not None:
        raise DeployBusy(deploy_busy_message(holder), holder)
    try:
        getattr(tasks, MODEL_TASKS[action]).apply_async(
            args=(version.pk,), kwargs={"user_id": getattr(user, "pk", None), **options}, task_id=task_id)
    except Exception:
        deploy_lock.release(task_id)
        raise
    return task_id


def model_action_execute(action: str, version_id: int, *, task_id: str, user_id: int | None = None,
                         on_progress=None, **options) -> dict:
    """Body of the export and promote tasks: run the service under the slot taken at enqueue time,
    reporting `{action, version, step, done, total}` to `on_progress` at each stage and scored clip.
    Returns that dict with `ok` and `message` (the result) or `error` and `code` (a refusal, or
    anything a person can act on); it raises only on bugs."""
    from django.contrib.auth import get_user_model

    from training_jobs.models import ModelVersion

    state = {"action": action, "version": "", "step": "starting", "done": 0, "total": 0}

    def report(**changes) -> None:
        state.update(changes)
        if on_progress is not None:
            on_progress(dict(state))

    try:
        version = ModelVersion.objects.get(pk=version_id)
    except ModelVersion.DoesNotExist:
        from training_jobs import deploy_lock

        deploy_lock.release(task_id)
        return {**state, "ok": False, "code": "NotFound", "error": f"model version {version_id} no longer exists"}
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    report(version=version.name)
    hooks = {"on_clip": lambda done, total: report(done=done, total=total),
             "on_step": lambda name: report(step=name, done=0, total=0), "lock_token": task_id, "user": user}
    try:
        if action == "export":
            version = model_export(version=version, **hooks, **options)
            message = (f"{version.name} exported ({version.export['quantization']}): faster-whisper WER "
                       f"{_pct(version.export.get('fw_wer'))} vs {_pct(version.export.get('transformers_wer'))} before "
                       f"conversion, {'verified' if version.export.get('verified') else 'NOT verified'}.")
        else:
            version = model_promote(version=version, **hooks, **options)
            message = f"{version.name} is now live" + (" (forced)." if version.note else ".")
    except ModelError as e:
        return {**state, "ok": False, "code": type(e).__name__, "error": str(e)}
    return {**state, "step": "done", "ok": True, "message": message}


def live_notify(event: str, **payload) -> None:
    """Tell the live app: one JSON message on S2S_LIVE_CHANNEL (the marker file was rewritten by
    the deploy step already, for apps that poll). A Redis outage is logged, not raised: the
    switch has happened and pollers still see it."""
    import json

    message = json.dumps({"event": event, "path": str(live_model_path() or ""), "root": str(live_root()),
                          "time": time.time(), **payload})
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        client.publish(settings.S2S_LIVE_CHANNEL, message)
        client.close()
    except redis.RedisError as e:
        logger.warning("live model %s; notification on %s failed: %s", event, settings.S2S_LIVE_CHANNEL, e)


def _beats(guard: dict) -> bool:
    return guard["candidate_wer"] is not None and (guard["live_wer"] is None
                                                   or guard["candidate_wer"] < guard["live_wer"])


def _version_deployed_as(deploy_name: str):
    from training_jobs.models import ModelVersion

    for version in ModelVersion.objects.exclude(export={}):
        if version.deploy_name == deploy_name:
            return version
    return None


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
