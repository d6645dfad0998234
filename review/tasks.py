"""Celery tasks of the review app: adapters into review.services / review.quality_services.

Both read the capture file, so they run on the `data` queue (the default), next to it.
"""
from dataclasses import asdict

from celery import shared_task

from review import quality_services, services


@shared_task(bind=True, acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def clips_transcribe(self, ids: list[int], model: str | None = None) -> dict:
    def progress(p):
        self.update_state(state="PROGRESS", meta=asdict(p))

    return quality_services.clips_transcribe(ids, model=model, on_progress=progress)


@shared_task(acks_late=True, soft_time_limit=30 * 60, time_limit=31 * 60)
def clips_scan(limit: int = 2000) -> dict:
    """Measure and check clips the live app captured since the last scan (Celery beat, see settings).

    Lists, the `check` filter and the `priority` order read cached metrics and checks; without
    this, a new capture shows no duration and sorts last until someone runs `scanclips`.
    """
    measured = services.clipmeta_fill(limit=limit)
    checked = quality_services.quality_refresh_stale(limit=limit)
    return {**measured, "checked": checked}
