"""Shared fixtures: a real SQLite file in the spec's exact schema, named users, API clients.

The clip database is never created by Django: each test that needs it gets a fresh file made
from `tests/fixtures/s2s_schema.sql` (the spec's DDL, verbatim) and the `s2s` connection is
pointed at it. Django's own database (`default`) is set up by pytest-django as usual, on SQLite
or on PostgreSQL when DATABASE_URL says so.
"""
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pytest
from django.db import connections

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA_SQL = (FIXTURES / "s2s_schema.sql").read_text()

# Tests that touch the clip file: transactional, because the file is fresh per test anyway and
# concurrency tests need real commits.
S2S = pytest.mark.django_db(databases=["default", "s2s"], transaction=True)


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker, django_db_keepdb):
    """Create only Django's own test database; the clip file is per test (see `s2s_db`)."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        old = setup_databases(verbosity=0, interactive=False, keepdb=django_db_keepdb, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        _end_stray_postgres_sessions()
        teardown_databases(old, verbosity=0, keepdb=django_db_keepdb)


def _end_stray_postgres_sessions():
    """Connections opened by async tests in asgiref's executor threads (or by a worker
    subprocess) would block DROP DATABASE on PostgreSQL: end them before the drop."""
    conn = connections["default"]
    if conn.vendor != "postgresql":
        return
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [conn.settings_dict["NAME"]],
        )
    conn.close()


def make_s2s_file(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_SQL)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def s2s_path(tmp_path) -> Path:
    """A new, empty S2S capture database in the exact seed schema."""
    return make_s2s_file(tmp_path / "s2s.db")


@pytest.fixture
def s2s_db(s2s_path, settings):
    """Point the `s2s` connection at a fresh seed-schema file for this test."""
    conn = connections["s2s"]
    conn.close()
    old = conn.settings_dict["NAME"]
    conn.settings_dict["NAME"] = str(s2s_path)
    settings.S2S_DATABASE = str(s2s_path)
    yield s2s_path
    conn.close()
    conn.settings_dict["NAME"] = old


def tone(seconds: float = 2.0, freq: float = 220.0, amp: float = 0.3, sr: int = 16000) -> np.ndarray:
    """A voiced-like test signal: a tone with a slow envelope plus faint noise (real samples)."""
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 * (1 - np.cos(2 * np.pi * np.minimum(t / max(seconds, 1e-3), 1)))
    rng = np.random.default_rng(int(freq))
    return (amp * env * np.sin(2 * np.pi * freq * t) + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def blob_of(samples: np.ndarray) -> bytes:
    """Compress exactly as the live app does: zlib of little-endian int16."""
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2")
    return zlib.compress(pcm.tobytes())


@pytest.fixture
def insert_clip(s2s_db):
    """Insert a raw row the way the live app does (plain sqlite3, no Django)."""

    def insert(transcript="hello world", blob=..., is_reviewed=0, is_trained=0, timestamp=..., seconds=2.0):
        if blob is ...:
            blob = blob_of(tone(seconds))
        conn = sqlite3.connect(s2s_db)
        cols, vals = ["transcript", "audio_blob", "is_reviewed", "is_trained"], [transcript, blob, is_reviewed, is_trained]
        if timestamp is not ...:
            cols.append("timestamp")
            vals.append(timestamp)
        cur = conn.execute(
            f"INSERT INTO s2s_training_data ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals
        )
        conn.commit()
        conn.close()
        return cur.lastrowid

    return insert


@pytest.fixture
def alice(django_user_model):
    """Alice reviews clips; she has an account."""
    return django_user_model.objects.create_user("alice", password="alice-pass-123")


@pytest.fixture
def api(alice):
    """A DRF client logged in as alice (session auth, CSRF not enforced by the test client)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def bob():
    """Bob has no account: an anonymous client."""
    from rest_framework.test import APIClient

    return APIClient()
