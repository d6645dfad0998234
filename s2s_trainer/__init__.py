"""S2S Trainer: review captured speech, fine-tune Whisper on it, ship the better model."""
from .celery import app as celery_app

__all__ = ("celery_app",)
