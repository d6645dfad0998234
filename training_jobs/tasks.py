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
