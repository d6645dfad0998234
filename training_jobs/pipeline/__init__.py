"""The Whisper fine-tuning pipeline, free of Django.

Plain inputs (a `TrainConfig`, a dataset snapshot directory), progress through a callback and
control (pause/stop) through a `RunControl`. Celery tasks and `manage.py starttraining` are thin
adapters over these modules.
"""
