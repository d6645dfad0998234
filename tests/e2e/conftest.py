"""Real-browser fixtures shared by every page test: a live server and a logged-in Chromium.

`live_app` starts the product the way `scripts/run` does (uvicorn, the real ASGI app) in a
subprocess on a free port, against its own Django database (migrated, with one reviewer) and its
own capture database in the spec's exact schema. `add_clip` puts real speech in that capture
file the way the live app does (plain sqlite3, zlib int16 PCM), synthesized by espeak-ng.
`browser` is headless Debian Chromium driven by Playwright; `page` is a logged-in tab on the
live server. All tests under tests/e2e are marked `browser`.

Fixtures: `live_app` (LiveServer: `.url`, `.s2s_path`, `.db()`, `.clip(id)`, `.log()`, `.env`),
`add_clip`, `browser`, `login_state`, `context` (1280x800, logged in), `page` (with `page.errors`),
`api_request(method, path, json=...)` (the REST API in the page's session, CSRF included),
`screenshot_dir` (test-artifacts/screenshots/). `start_live_app` and `insert_speech_clip` are plain
functions for scripts (bench/review_next_clip.py).

Fixture scopes: the server starts once per session, the browser once per module (seconds
each); every test
gets a fresh browser context (cookies, sessionStorage) and adds its own clips, so tests do not
see each other's state as long as they look only at their own clip ids (pass `id_min`/`id_max`
in the page URL to scope the page's navigation to them). Read and write clips with
`live_app.db()` (sqlite3) or the API, not the Django ORM: while Playwright runs, this thread has a
running event loop and Django refuses synchronous queries. The pages run under the real CSP
(no eval): give `page.wait_for_function` an arrow function ("() => ..."), not a bare expression.
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
USERNAME, PASSWORD = "reviewer", "reviewer-pass-123"
SAMPLE_RATE = 16_000


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


# ----------------------------------------------------------------------------- speech
@lru_cache(maxsize=64)
def _speech_cached(text: str, voice: str, speed: int) -> bytes:
    espeak = shutil.which("espeak-ng")
    if not espeak:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng): the page tests need real speech")
    wav = subprocess.run([espeak, "--stdout", "-v", voice, "-s", str(speed), text],
                         check=True, capture_output=True, timeout=30).stdout
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE:  # espeak-ng speaks at 22.05 kHz; the live app stores 16 kHz
        n = int(round(len(samples) * SAMPLE_RATE / rate))
        samples = np.interp(np.arange(n) * (rate / SAMPLE_RATE), np.arange(len(samples)), samples).astype(np.float32)
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2")
    return pcm.tobytes()


def speech_pcm(text: str, *, voice: str = "en-us", speed: int = 160) -> bytes:
    """Little-endian int16 16 kHz mono PCM of `text` spoken by espeak-ng."""
    return _speech_cached(text, voice, speed)


# ----------------------------------------------------------------------------- live server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    s2s_path: Path
    env: dict
    log_path: Path
    username: str = USERNAME
    password: str = PASSWORD
    process: subprocess.Popen | None = field(default=None, repr=False)

    def db(self) -> sqlite3.Connection:
        """A plain sqlite3 connection to the capture file, like the live app's."""
        conn = sqlite3.connect(self.s2s_path, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def clip(self, clip_id: int) -> sqlite3.Row | None:
        conn = self.db()
        try:
            return conn.execute(
                "SELECT id, transcript, is_reviewed, is_trained, timestamp FROM s2s_training_data WHERE id = ?",
                (clip_id,),
            ).fetchone()
        finally:
            conn.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=180)


def start_live_app(base: Path) -> LiveServer:
    """Start the app under uvicorn with fresh databases in `base`; the caller calls `.stop()`.

    Used by the `live_app` fixture and by `bench/review_next_clip.py`.
    """
    from tests.conftest import make_s2s_file

    base.mkdir(parents=True, exist_ok=True)
    s2s_path = make_s2s_file(base / "s2s.db")  # tests/fixtures/s2s_schema.sql: the spec's DDL
    (base / "artifacts").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "s2s_trainer.settings",
        # Production-like: DEBUG off (static files still come from WhiteNoise's finders).
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "e2e-tests-only-secret-key-0123456789abcdef",
        "S2S_DATABASE": str(s2s_path),
        "DATABASE_URL": f"sqlite:///{base / 'trainer.db'}",
        "S2S_ARTIFACTS": str(base / "artifacts"),
        "S2S_LIVE_MODEL_DIR": str(base / "live"),  # never the checkout's models/live
        "S2S_LIVE_CHANNEL": f"s2s:live-model:e2e-{os.getpid()}",  # pub/sub ignores the Redis db number
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "shell", "-c",
            "from django.contrib.auth import get_user_model; "
            f"get_user_model().objects.create_superuser({USERNAME!r}, '', {PASSWORD!r})")
    port = _free_port()
    log_path = base / "server.log"
    uvicorn = Path(sys.executable).with_name("uvicorn")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(uvicorn), "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "s2s_trainer.asgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = LiveServer(url=f"http://127.0.0.1:{port}", s2s_path=s2s_path, env=env, log_path=log_path, process=proc)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/accounts/login/", timeout=2) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"uvicorn did not answer within 60 s:\n{server.log()}")
        time.sleep(0.2)


def insert_speech_clip(s2s_path: Path, spoken: str = "hello world", *, transcript: str | None = None, blob=...,
                       is_reviewed: int = 0, is_trained: int = 0, timestamp: str | None = None) -> int:
    """Insert a row the way the live app does (plain sqlite3); the audio is `spoken` via espeak-ng."""
    if blob is ...:
        blob = zlib.compress(speech_pcm(spoken))
    cols = ["transcript", "audio_blob", "is_reviewed", "is_trained"]
    vals = [spoken if transcript is None else transcript, blob, is_reviewed, is_trained]
    if timestamp is not None:
        cols.append("timestamp")
        vals.append(timestamp)
    conn = sqlite3.connect(s2s_path, timeout=10)
    try:
        cur = conn.execute(
            f"INSERT INTO s2s_training_data ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals
        )
        conn.commit()
        return cur.lastrowid
    finally:
        conn.close()


@pytest.fixture(scope="session")
def live_app(tmp_path_factory) -> Iterator[LiveServer]:
    """The real app under uvicorn on a free port, with its own databases; stopped at the end."""
    server = start_live_app(tmp_path_factory.mktemp("live"))
    yield server
    server.stop()


@pytest.fixture
def add_clip(live_app):
    """Insert a clip of real speech into the live app's capture file; returns its id.

    `add_clip("hello there")` speaks and stores "hello there"; `transcript=` stores another text
    (what Whisper got wrong); `blob=` stores raw bytes (None for a NULL blob).
    """

    def add(spoken: str = "hello world", **kwargs) -> int:
        return insert_speech_clip(live_app.s2s_path, spoken, **kwargs)

    return add


# ----------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Debian Chromium (Playwright cannot download its own browser here).

    Module-scoped on purpose: Playwright's sync API keeps an asyncio loop running in this thread
    while it is open, which Django (SynchronousOnlyOperation) and pytest-asyncio tests that run
    later in the same session would trip over.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def login_state(browser, live_app) -> dict:
    """Cookies of a logged-in session, made once through the real login form."""
    ctx = browser.new_context(base_url=live_app.url)
    page = ctx.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", live_app.username)
    page.fill("#id_password", live_app.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    state = ctx.storage_state()
    ctx.close()
    return state


@pytest.fixture
def context(browser, live_app, login_state):
    """A fresh logged-in browser context (own sessionStorage), laptop-sized."""
    ctx = browser.new_context(base_url=live_app.url, storage_state=login_state,
                              viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


@dataclass
class PageErrors:
    console: list = field(default_factory=list)
    exceptions: list = field(default_factory=list)


@pytest.fixture
def page(context):
    """A tab in `context`; its JS exceptions and console errors land in `page.errors`."""
    p = context.new_page()
    errors = PageErrors()
    p.on("pageerror", lambda exc: errors.exceptions.append(str(exc)))
    p.on("console", lambda msg: msg.type == "error" and errors.console.append(msg.text))
    p.errors = errors
    yield p


@pytest.fixture
def api_request(context, live_app):
    """Call the REST API as the logged-in reviewer (same session), e.g. behind the page's back."""
    from playwright.sync_api import APIRequestContext

    def call(method: str, path: str, json=None, headers=None):
        req: APIRequestContext = context.request
        csrf = next((c["value"] for c in context.cookies() if c["name"] == "csrftoken"), "")
        h = {"X-CSRFToken": csrf, "Referer": live_app.url + "/", **(headers or {})}
        return req.fetch(live_app.url + path, method=method, data=json, headers=h)

    return call


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
