"""Celery tasks of the review app: adapters into review.quality_services.

Re-transcription reads the capture file, so it runs on the `data` queue (the default), next to it.
"""
from dataclasses import asdict

from celery import shared_task

from review import quality_services


@shared_task(bind=True, acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def clips_transcribe(self, ids: list[int], model: str | None = None) -> dict:
    def progress(p):
        self.update_state(state="PROGRESS", meta=asdict(p))

    return quality_services.clips_transcribe(ids, model=model, on_progress=progress)
