"""Celery tasks: each one line of glue into `training_jobs.services`.

Routed by name in settings (CELERY_TASK_ROUTES): prepare and finish open the S2S file and run on
the `data` queue; training runs on `gpu`. Late acks + reject-on-worker-lost give a task whose
worker died back to the queue; the services make that redelivery safe, and skip a task that is
not the run's latest (a stale duplicate) by comparing task ids.
"""
from celery import shared_task

from training_jobs import services

DATA_LIMITS = {"soft_time_limit": 2 * 3600, "time_limit": 2 * 3600 + 300}


@shared_task(bind=True, acks_late=True, **DATA_LIMITS)
def run_prepare(self, run_id: int) -> None:
    services.run_prepare_execute(run_id, task_id=self.request.id)


@shared_task(bind=True, acks_late=True)
def run_train(self, run_id: int) -> None:
    services.run_train_execute(run_id, task_id=self.request.id)


@shared_task(bind=True, acks_late=True, **DATA_LIMITS)
def run_finish(self, run_id: int) -> None:
    services.run_finish_execute(run_id, task_id=self.request.id)


@shared_task(acks_late=True, **DATA_LIMITS)
def model_auto_deploy(version_id: int) -> None:
    """On the `data` queue: the machine with the capture file is the live app's."""
    services.model_auto_deploy(version_id)


def _progress_reporter(task):
    """Celery task state PROGRESS with the service's `{action, version, step, done, total}`."""
    return lambda state: task.update_state(state="PROGRESS", meta=state)


@shared_task(bind=True, acks_late=True, **DATA_LIMITS)
def model_export(self, version_id: int, user_id: int | None = None, **options) -> dict:
    """Queue `data`: the worker that writes S2S_ARTIFACTS/exports next to the live directory."""
    return services.model_action_execute("export", version_id, task_id=self.request.id, user_id=user_id,
                                         on_progress=_progress_reporter(self), **options)


@shared_task(bind=True, acks_late=True, **DATA_LIMITS)
def model_promote(self, version_id: int, user_id: int | None = None, **options) -> dict:
    """Queue `data`: the switch happens in S2S_LIVE_MODEL_DIR, which that worker must see."""
    return services.model_action_execute("promote", version_id, task_id=self.request.id, user_id=user_id,
                                         on_progress=_progress_reporter(self), **options)
