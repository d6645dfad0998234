"""The Celery app: broker and results on Redis, configured from Django settings (CELERY_*)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "s2s_trainer.settings")

app = Celery("s2s_trainer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
