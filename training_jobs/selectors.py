"""Reads for the dashboard, REST and the websocket: runs, their curves and logs, and what data is
ready to train on (read from the review side's clip table, never its audio)."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Sum

from training_jobs.models import ACTIVE_STATUSES, RunLogLine, RunMetric, RunStatus, TrainingRun

logger = logging.getLogger(__name__)

LOG_PAGE = 1000


def run_get(run_id: int) -> TrainingRun:
    """Raises TrainingRun.DoesNotExist (the API answers 404)."""
    return TrainingRun.objects.get(pk=run_id)


def run_list():
    return TrainingRun.objects.select_related("created_by").order_by("-id")


def run_active() -> TrainingRun | None:
    return TrainingRun.objects.filter(status__in=ACTIVE_STATUSES).order_by("-id").first()


def run_current() -> TrainingRun | None:
    """The active run, else the latest one: what the dashboard and /api/train/status show."""
    return run_active() or TrainingRun.objects.order_by("-id").first()


def run_last_finished() -> TrainingRun | None:
    return TrainingRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-finished_at", "-id").first()


def run_metrics(run_id: int) -> list[dict]:
    return [m.as_dict() for m in RunMetric.objects.filter(run_id=run_id).order_by("id")]


def run_log_after(run_id: int, offset: int = 0, limit: int = LOG_PAGE) -> tuple[list[dict], int]:
    """Lines with offset > `offset` (at most `limit`) and the offset to ask from next time."""
    lines = [line.as_dict() for line in RunLogLine.objects.filter(run_id=run_id, offset__gt=offset)
             .order_by("offset")[:limit]]
    return lines, (lines[-1]["offset"] if lines else offset)


def run_log_tail(run_id: int, n: int = 200) -> list[dict]:
    lines = list(RunLogLine.objects.filter(run_id=run_id).order_by("-offset")[:n])
    return [line.as_dict() for line in reversed(lines)]


def data_status() -> dict:
    """Reviewed clips and hours ready for training, read from the clip file without blobs.

    Hours come from the durations the review side caches per clip (`ClipMeta.duration_s`); clips
    not measured yet are counted in `unmeasured`. The clip file may be missing or locked: the page
    must still load, so that is reported, not raised.
    """
    from review.models import Clip, ClipMeta

    try:
        clips = Clip.objects.without_audio()
        reviewed_ids = clips.filter(is_reviewed=1).values("id")
        total = clips.count()
        reviewed = clips.filter(is_reviewed=1).count()
        untrained = clips.filter(is_reviewed=1).exclude(is_trained=1).count()
        measured = ClipMeta.objects.filter(clip_id__in=reviewed_ids, duration_s__isnull=False)
        seconds = measured.aggregate(s=Sum("duration_s"))["s"] or 0.0
        return {
            "available": True,
            "total": total,
            "reviewed": reviewed,
            "reviewed_untrained": untrained,
            "reviewed_hours": round(seconds / 3600, 3),
            "unmeasured": reviewed - measured.count(),
        }
    except DatabaseError as e:
        logger.warning("clip database unavailable for data status: %s", e)
        return {"available": False, "error": str(e)}


def current_model() -> dict:
    """The model the live app runs: the one promoted to S2S_LIVE_MODEL_DIR; before any promotion,
    the latest succeeded run's, else the base model."""
    from training_jobs.pipeline.deploy import live_model_dir

    live = live_model_dir(settings.S2S_LIVE_MODEL_DIR)
    if live is not None:
        return {"name": f"{live.name} (live)", "path": str(live), "run": None, "base": _default_base()}
    run = run_last_finished()
    if run and run.artifacts.get("model_dir"):
        base = run.config.get("base_model") or _default_base()
        return {"name": f"run {run.pk} (fine-tuned from {base})", "path": run.artifacts["model_dir"], "run": run.pk,
                "base": base}
    return {"name": f"{_default_base()} (base)", "path": "", "run": None, "base": _default_base()}


def _default_base() -> str:
    return settings.S2S_BASE_MODEL or "tiny.en"


# -- model registry -----------------------------------------------------------------------------

def model_list():
    from training_jobs.models import ModelVersion

    return ModelVersion.objects.select_related("run").order_by("-id")


def model_get(version_id: int | str):
    """By id or by name. Raises ModelVersion.DoesNotExist (the API answers 404)."""
    from training_jobs.models import ModelVersion

    if isinstance(version_id, int) or str(version_id).isdigit():
        return ModelVersion.objects.get(pk=int(version_id))
    return ModelVersion.objects.get(name=version_id)


def model_events(limit: int = 50):
    from training_jobs.models import ModelEvent

    return ModelEvent.objects.select_related("user").order_by("-id")[:limit]


def live_status() -> dict:
    """What is deployed in S2S_LIVE_MODEL_DIR right now (read from the filesystem, the truth)."""
    from training_jobs.pipeline import deploy

    root = settings.S2S_LIVE_MODEL_DIR
    return {"root": str(root), "live": deploy.live_name(root), "previous": deploy.previous_name(root),
            "path": str(deploy.live_model_dir(root) or ""), "channel": settings.S2S_LIVE_CHANNEL,
            "marker": deploy.read_marker(root)}


def deploy_action_current() -> dict | None:
    """The export/promote/rollback/delete holding the deployment slot now (None when free, or
    when Redis does not answer: the page then simply shows no running action)."""
    import redis

    from training_jobs import deploy_lock

    try:
        return deploy_lock.holder()
    except redis.RedisError as e:
        logger.warning("deployment lock unreadable: %s", e)
        return None


def model_task_status(task_id: str) -> dict:
    """A queued export/promotion as the page follows it: Celery's state (PENDING, STARTED,
    PROGRESS, SUCCESS, FAILURE) with the task's `{action, version, step, done, total}` and, once
    finished, `ok` with `message` or `error`. `holds_slot` false while the state is still
    running means its worker died (the slot expired): the page says so instead of waiting forever."""
    from celery.result import AsyncResult

    from training_jobs.tasks import model_promote

    result = AsyncResult(task_id, app=model_promote.app)
    info = result.info
    if isinstance(info, dict):
        body = dict(info)
    elif info is not None:  # FAILURE: the exception (a bug, not a refusal: those are results)
        body = {"ok": False, "code": type(info).__name__, "error": str(info)}
    else:
        body = {}
    holder = deploy_action_current() or {}
    return {"task_id": task_id, "state": result.state, **body, "holds_slot": holder.get("task_id") == task_id}


def version_clips(version) -> dict:
    """Per-clip results keyed by clip id: faster-whisper's (the exported model) when the version
    was exported, else the transformers evaluation's."""
    clips = version.export.get("clips") or version.clip_results or []
    return {str(c["id"]): c for c in clips}


def model_compare(a, b) -> dict:
    """Two versions clip by clip on the test clips both were scored on: where one is right (no
    word errors) and the other wrong, first; then where both err differently."""
    clips_a, clips_b = version_clips(a), version_clips(b)
    rows = []
    for cid in sorted(set(clips_a) & set(clips_b), key=lambda x: (len(x), x)):
        ca, cb = clips_a[cid], clips_b[cid]
        if ca["wer"] == 0 and cb["wer"] > 0:
            verdict = "a_right"
        elif cb["wer"] == 0 and ca["wer"] > 0:
            verdict = "b_right"
        elif ca["wer"] == 0 and cb["wer"] == 0:
            verdict = "both_right"
        else:
            verdict = "both_wrong"
        rows.append({"id": cid, "reference": ca["reference"], "a_text": ca["text"], "b_text": cb["text"],
                     "a_wer": ca["wer"], "b_wer": cb["wer"], "verdict": verdict})
    order = {"a_right": 0, "b_right": 1, "both_wrong": 2, "both_right": 3}
    rows.sort(key=lambda r: (order[r["verdict"]], -abs(r["a_wer"] - r["b_wer"])))
    counts = {k: sum(r["verdict"] == k for r in rows) for k in order}
    return {"a": a.name, "b": b.name, "shared_clips": len(rows), "only_in_a": len(set(clips_a) - set(clips_b)),
            "only_in_b": len(set(clips_b) - set(clips_a)), "counts": counts, "clips": rows}
