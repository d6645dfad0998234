"""The Celery app: broker and results on Redis, configured from Django settings (CELERY_*).

Queues (see settings): `data` for work that opens the S2S SQLite file, `gpu` for training and
evaluation. `celery -A s2s_trainer worker -Q data,gpu` serves both on one machine; a GPU box
runs `-Q gpu` only.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "s2s_trainer.settings")

app = Celery("s2s_trainer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
