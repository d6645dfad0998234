"""Real parts for the async backbone: Redis on loopback (its own db number), a real Celery worker
subprocess serving both queues, the stand-in pipeline plugged in through S2S_TRAINING_PIPELINE.

The worker is another process, so Django's test database must be one it can open: on SQLite it
is made a file here (pytest-django's default would be in memory); on PostgreSQL (DATABASE_URL)
the worker is pointed at the `test_s2s_trainer_<pid>` database pytest-django creates.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import redis

from tests.training_jobs.processes import start_worker, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]
REDIS_TEST_URL = os.environ.get("S2S_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
STANDIN = "tests.training_jobs.standin.StandInPipeline"
STEP_S = "0.05"
WORKER_LIVE_CHANNEL = f"s2s:live-model:worker-test-{os.getpid()}"  # pub/sub ignores the db number
_TEST_DB_FILE = Path(tempfile.gettempdir()) / f"s2s-trainer-test-default-{os.getpid()}.sqlite3"


def pytest_configure(config):
    from django.db import connections

    settings_dict = connections["default"].settings_dict
    if settings_dict["TEST"].get("NAME"):
        return
    if settings_dict["ENGINE"].endswith("sqlite3"):
        settings_dict["TEST"]["NAME"] = str(_TEST_DB_FILE)
    else:
        # One PostgreSQL server serves several test sessions at once here: a name of our own, so
        # another session's `test_postgres` drop does not pull the database from under ours.
        settings_dict["TEST"]["NAME"] = f"test_s2s_trainer_{os.getpid()}"


def pytest_unconfigure(config):
    """Django removes the test database file but not SQLite's WAL side files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{_TEST_DB_FILE}{suffix}").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def training_env(tmp_path_factory):
    """Settings for this process and the worker: test Redis db, stand-in pipeline, temp artifacts,
    and a session-long S2S file the worker reads (tests reset its rows)."""
    from channels.layers import channel_layers
    from django.test.utils import override_settings

    from s2s_trainer.celery import app as celery_app
    from tests.conftest import make_s2s_file

    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    base = tmp_path_factory.mktemp("training")
    s2s_file = make_s2s_file(base / "s2s.db")
    artifacts = base / "artifacts"
    override = override_settings(
        REDIS_URL=REDIS_TEST_URL,
        CHANNEL_LAYERS=_channel_layers_on(REDIS_TEST_URL),
        CELERY_BROKER_URL=REDIS_TEST_URL,
        CELERY_RESULT_BACKEND=REDIS_TEST_URL,
        S2S_TRAINING_PIPELINE=STANDIN,
        S2S_ARTIFACTS=artifacts,
        VAR_DIR=base / "var",
        S2S_DATABASE=str(s2s_file),
    )
    override.enable()
    channel_layers.backends = {}
    celery_app.conf.update(broker_url=REDIS_TEST_URL, result_backend=REDIS_TEST_URL)
    yield {"s2s": s2s_file, "artifacts": artifacts, "base": base}
    override.disable()
    channel_layers.backends = {}
    redis.Redis.from_url(REDIS_TEST_URL).flushdb()


def _channel_layers_on(url: str) -> dict:
    """The project's channel layer settings with only the Redis address changed."""
    import copy

    from django.conf import settings

    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"] = [{**h, "address": url} if isinstance(h, dict) else url
                                            for h in layers["default"]["CONFIG"]["hosts"]]
    return layers


def _db_url_for_worker() -> str:
    from django.db import connections

    d = connections["default"].settings_dict
    if d["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{d['NAME']}"
    auth = d["USER"] + (f":{d['PASSWORD']}" if d.get("PASSWORD") else "")
    return f"postgres://{auth}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"


def worker_env(training_env, db_url: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "s2s_trainer.settings",
        "REDIS_URL": REDIS_TEST_URL,
        "CELERY_BROKER_URL": REDIS_TEST_URL,
        "CELERY_RESULT_BACKEND": REDIS_TEST_URL,
        "DATABASE_URL": db_url,
        "S2S_DATABASE": str(training_env["s2s"]),
        "S2S_ARTIFACTS": str(training_env["artifacts"]),
        "S2S_TRAINING_PIPELINE": STANDIN,
        "S2S_STANDIN_STEP_S": STEP_S,
        # Never the checkout's models/live: promotions by the worker land in the session's folder.
        "S2S_LIVE_MODEL_DIR": str(training_env["base"] / "live"),
        "S2S_LIVE_CHANNEL": WORKER_LIVE_CHANNEL,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture(scope="session")
def celery_worker_process(training_env, django_db_setup, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = start_worker(worker_env(training_env, _db_url_for_worker()), log_path, f"test-{os.getpid()}")
    yield proc
    stop_process(proc)
    if os.environ.get("S2S_SHOW_WORKER_LOG"):
        print(log_path.read_text()[-5000:])


@pytest.fixture
def s2s_clips(training_env, transactional_db):
    """The worker's S2S file, emptied, with the `s2s` connection pointed at it; returns an inserter."""
    import sqlite3

    from django.db import connections

    from tests.conftest import blob_of, tone

    path = training_env["s2s"]
    conn = connections["s2s"]
    conn.close()
    old = conn.settings_dict["NAME"]
    conn.settings_dict["NAME"] = str(path)
    raw = sqlite3.connect(path, check_same_thread=False)
    raw.execute("DELETE FROM s2s_training_data")
    raw.commit()

    def insert(n=1, *, reviewed=1, trained=0, text="hello world"):
        ids = []
        for i in range(n):
            cur = raw.execute(
                "INSERT INTO s2s_training_data (transcript, audio_blob, is_reviewed, is_trained) VALUES (?, ?, ?, ?)",
                (f"{text} {i}", blob_of(tone(0.2)), reviewed, trained))
            ids.append(cur.lastrowid)
        raw.commit()
        return ids

    yield insert
    raw.close()
    conn.close()
    conn.settings_dict["NAME"] = old


@pytest.fixture
def worker(celery_worker_process, training_env, transactional_db):
    """The running worker; afterwards any run still active is stopped and awaited, so the next
    test starts with a free training slot and an idle worker."""
    yield celery_worker_process
    from training_jobs import services
    from training_jobs.models import ACTIVE_STATUSES, TrainingRun

    for run in TrainingRun.objects.filter(status__in=ACTIVE_STATUSES):
        try:
            services.run_stop(run_id=run.pk)
        except services.RunError:
            pass
    wait_for(lambda: not TrainingRun.objects.filter(status__in=ACTIVE_STATUSES).exists(), timeout=20,
             what="active runs to end")
