"""Django settings, read from the environment through django-environ.

Every setting has a safe local default so a fresh clone runs with nothing configured;
production settings that must not have a default (the secret key when DEBUG is off) fail
at start with a message that says what to set.
"""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY: DJANGO_DEBUG is off, so no default key is used.")
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The live app's SQLite file. Unset: the run command creates a demo database here.
S2S_DEFAULT_DEMO_DATABASE = VAR_DIR / "demo_s2s.db"
S2S_DATABASE = env.str("S2S_DATABASE", default=str(S2S_DEFAULT_DEMO_DATABASE))
S2S_ARTIFACTS = Path(env.str("S2S_ARTIFACTS", default=str(BASE_DIR / "models")))
S2S_BASE_MODEL = env.str("S2S_BASE_MODEL", default="")
S2S_MAX_CLIP_SECONDS = env.float("S2S_MAX_CLIP_SECONDS", default=600.0)
S2S_SQLITE_BUSY_TIMEOUT_MS = env.int("S2S_SQLITE_BUSY_TIMEOUT_MS", default=5000)
S2S_MAX_ACTIVE_RUNS = env.int("S2S_MAX_ACTIVE_RUNS", default=1)
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Model registry and live deployment (docs/live-app.md): the live app loads `<S2S_LIVE_MODEL_DIR>/current`;
# promotions and rollbacks are announced on S2S_LIVE_CHANNEL (Redis pub/sub) and by the CHANGED marker.
S2S_LIVE_MODEL_DIR = Path(env.str("S2S_LIVE_MODEL_DIR", default=str(BASE_DIR / "models" / "live")))
S2S_LIVE_CHANNEL = env.str("S2S_LIVE_CHANNEL", default="s2s:live-model")
# One export/promote/rollback/delete at a time (a Redis key); its holder refreshes it while it works,
# so a killed worker frees it after this long.
S2S_DEPLOY_LOCK_SECONDS = env.int("S2S_DEPLOY_LOCK_SECONDS", default=600)
S2S_EXPORT_QUANTIZATION = env.str("S2S_EXPORT_QUANTIZATION", default="int8_float16")
# After a successful run: export, and promote when it beats the live model (else keep it a candidate).
S2S_AUTO_DEPLOY = env.bool("S2S_AUTO_DEPLOY", default=False)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "review",
    "training_jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "s2s_trainer.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "s2s_trainer.wsgi.application"
ASGI_APPLICATION = "s2s_trainer.asgi.application"

VAR_DIR.mkdir(exist_ok=True)
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'trainer.db'}"),
    # The live app's file: clip rows and our s2s_review_* side tables. Never migrated by Django;
    # review.schema creates the side tables and indexes (IF NOT EXISTS) on first connection.
    "s2s": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": S2S_DATABASE,
        "OPTIONS": {
            "timeout": S2S_SQLITE_BUSY_TIMEOUT_MS / 1000,
            # The live app's `timestamp` is declared DATETIME but may hold anything: read it as stored
            # text (Django still converts our side tables' datetimes itself).
            "detect_types": 0,
            "transaction_mode": "IMMEDIATE",
            "init_command": f"PRAGMA journal_mode=WAL; PRAGMA busy_timeout={S2S_SQLITE_BUSY_TIMEOUT_MS}; PRAGMA synchronous=NORMAL",
        },
    },
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000", "transaction_mode": "IMMEDIATE"}
    )
DATABASE_ROUTERS = ["s2s_trainer.routers.S2SRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env.str("API_RATE_LIMIT", default="100000/hour")},
    "EXCEPTION_HANDLER": "s2s_trainer.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "S2S Trainer API",
    "DESCRIPTION": "Review captured speech clips and fine-tune Whisper on them.",
    "VERSION": "0.1.0",
}

# django-csp 4 style: no inline script anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "connect-src": ["'self'", "ws:", "wss:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py >= 6 reads with a 5 s socket timeout by default, the same 5 s channels_redis
        # blocks for in BZPOPMIN: an idle websocket consumer then dies with "Timeout reading".
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": 1000, "expiry": 60},
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
# Two queues: `data` opens the S2S SQLite file (prepare, mark trained, exports); `gpu` trains and
# evaluates and may run on a machine that never sees that file.
CELERY_TASK_DEFAULT_QUEUE = "data"
CELERY_TASK_ROUTES = {
    "training_jobs.tasks.run_prepare": {"queue": "data"},
    "training_jobs.tasks.run_finish": {"queue": "data"},
    "training_jobs.tasks.run_train": {"queue": "gpu"},
    # Export and promotion write S2S_ARTIFACTS/exports and switch S2S_LIVE_MODEL_DIR: the live app's machine.
    "training_jobs.tasks.model_export": {"queue": "data"},
    "training_jobs.tasks.model_promote": {"queue": "data"},
    "training_jobs.tasks.model_auto_deploy": {"queue": "data"},
}
# A run can take many hours: acknowledge only when done, one task per worker process at a time,
# and give a lost worker's task back to the queue (run_train resumes from its checkpoint).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=40 * 3600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=41 * 3600)
# Must outlast the longest task, or Redis hands an unacknowledged run to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=48 * 3600)}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# `celery beat` (the Procfile's `beat`) measures and checks new captures every S2S_SCAN_SECONDS;
# a scan still queued when the next one is due expires instead of piling up. 0 turns it off.
S2S_SCAN_SECONDS = env.int("S2S_SCAN_SECONDS", default=60)
CELERY_BEAT_SCHEDULE = {
    "scan-new-clips": {
        "task": "review.tasks.clips_scan",
        "schedule": float(S2S_SCAN_SECONDS),
        "options": {"queue": "data", "expires": float(S2S_SCAN_SECONDS)},
    },
} if S2S_SCAN_SECONDS > 0 else {}
# Dotted path to the object whose prepare/train/finish hooks the tasks call (tests plug a short
# stand-in in here; the default adapts training_jobs.pipeline).
S2S_TRAINING_PIPELINE = env.str("S2S_TRAINING_PIPELINE", default="training_jobs.services.RealPipeline")
# A run still "stopping" this long after the request and its last progress has lost its worker; a
# second Stop then marks it stopped so the training slot is freed.
S2S_STALE_RUN_SECONDS = env.int("S2S_STALE_RUN_SECONDS", default=600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
