"""The training dashboard in a real Chromium against the real stack: uvicorn (ASGI, websockets),
a real Celery worker serving both queues, Redis on loopback, SQLite files, the stand-in
pipeline body (real Progress events and RunControl, seconds instead of hours).

Overrides the shared `live_app` fixture for this module only: the server and the worker need
the stand-in pipeline and a Redis db of their own, set before they start.
"""
from __future__ import annotations

import os
import re

import pytest
import redis

from tests.e2e.conftest import insert_speech_clip, start_live_app
from tests.training_jobs.processes import start_worker, stop_process

REDIS_E2E_URL = os.environ.get("S2S_E2E_REDIS_URL", "redis://127.0.0.1:6379/10")
STACK_ENV = {
    "REDIS_URL": REDIS_E2E_URL,
    "CELERY_BROKER_URL": REDIS_E2E_URL,
    "CELERY_RESULT_BACKEND": REDIS_E2E_URL,
    "S2S_TRAINING_PIPELINE": "tests.training_jobs.standin.StandInPipeline",
    "S2S_STANDIN_STEP_S": "0.05",
}


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    redis.Redis.from_url(REDIS_E2E_URL).flushdb()
    saved = {k: os.environ.get(k) for k in STACK_ENV}
    os.environ.update(STACK_ENV)
    try:
        server = start_live_app(tmp_path_factory.mktemp("dashboard"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    worker_log = server.log_path.with_name("worker.log")
    try:
        worker = start_worker({**server.env, **STACK_ENV}, worker_log, f"e2e-{os.getpid()}")
    except Exception:
        server.stop()
        raise
    server.worker_log = worker_log
    yield server
    stop_process(worker)
    server.stop()
    redis.Redis.from_url(REDIS_E2E_URL).flushdb()


def wait_js(page, live_app, condition: str, timeout_s: float = 15):
    """page.wait_for_function with a diagnosis (page state, worker log) instead of a bare timeout.
    Generous: six engineers share two CPU cores here."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => {condition}", timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        state = page.evaluate("""() => ({status: document.querySelector('#run-status').textContent,
            progress: document.querySelector('#run-progress').value,
            connection: document.querySelector('#connection').textContent,
            log: document.querySelector('#run-log').textContent.slice(-500)})""")
        raise AssertionError(f"not true within {timeout_s}s: {condition}\npage: {state}\n"
                             f"worker log: {live_app.worker_log.read_text()[-2000:]}") from None


def test_start_a_run_watch_it_live_stop_it_and_resume_it(page, live_app, screenshot_dir):
    for text in ("turn the lights on", "what is the weather like"):
        insert_speech_clip(live_app.s2s_path, text, is_reviewed=1)

    page.goto("/training/")
    page.wait_for_selector("#runs-table tbody td")  # the module has run and loaded history
    assert "2 reviewed clips ready" in re.sub(r"\s+", " ", page.inner_text("#data-status"))
    page.click("details > summary")
    page.fill("#cfg-max_steps", "400")
    page.fill("#cfg-learning_rate", "2e-5")
    page.click("#start-button")

    wait_js(page, live_app, "document.querySelector('#run-status').textContent === 'training'", 20)
    # The bar showed data preparation first (its own 0-100%); training steps read "step N/400".
    step_js = "parseInt((document.querySelector('#run-step').textContent.match(/step (\\d+)\\/400/) || [0, 0])[1])"
    wait_js(page, live_app, f"{step_js} > 0")
    first = page.evaluate(f"() => {step_js}")
    wait_js(page, live_app, f"{step_js} > {first} && document.querySelector('#run-progress').value < 100")
    wait_js(page, live_app, "document.querySelector('#m-train_loss').textContent !== '—'")
    wait_js(page, live_app, "document.querySelector('#m-wer').textContent !== '—'")
    assert "live" in page.inner_text("#connection")  # updates came over the websocket
    assert "queued by reviewer" in page.inner_text("#run-log")
    assert page.locator("#chart-loss canvas").count() == 1 and page.locator("#chart-wer canvas").count() == 1
    page.screenshot(path=str(screenshot_dir / "training-dashboard-running.png"), full_page=True)

    page.click("#stop-button")

    wait_js(page, live_app, "document.querySelector('#run-status').textContent === 'stopped'", 10)
    assert page.is_enabled("#resume-button") and page.is_disabled("#stop-button")
    wait_js(page, live_app, "document.querySelector('#run-log').textContent.includes('checkpoint')")
    wait_js(page, live_app, "document.querySelector('#runs-table tbody tr td:nth-child(2)').textContent === 'stopped'")
    stopped_at = page.evaluate(f"() => {step_js}")
    assert 0 < stopped_at < 400

    page.click("#resume-button")  # continues from the checkpoint the stop wrote

    wait_js(page, live_app, "document.querySelector('#run-log').textContent.includes('resuming from checkpoint at step')")
    wait_js(page, live_app, f"{step_js} > {stopped_at}")
    assert page.inner_text("#run-status") == "training"
    page.click("#stop-button")
    wait_js(page, live_app, "document.querySelector('#run-status').textContent === 'stopped'", 10)
    assert page.errors.exceptions == [] and page.errors.console == []
    assert "Traceback" not in live_app.worker_log.read_text()


def test_without_websockets_the_page_follows_the_run_by_polling_rest(context, live_app):
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A proxy that drops websockets: the constructor fails, as it does where ws:// is blocked.
    page.add_init_script("window.WebSocket = function () { throw new Error('websockets blocked'); };")
    insert_speech_clip(live_app.s2s_path, "play some jazz", is_reviewed=1)

    page.goto("/training/")
    page.wait_for_selector("#runs-table tbody td")
    page.click("details > summary")
    page.fill("#cfg-max_steps", "400")
    page.click("#start-button")

    wait_js(page, live_app, "document.querySelector('#connection').textContent.includes('polling')")
    wait_js(page, live_app, "document.querySelector('#run-status').textContent === 'training'", 20)
    wait_js(page, live_app, "document.querySelector('#run-step').textContent.includes('/400')")
    wait_js(page, live_app, "document.querySelector('#run-log').textContent.includes('queued by reviewer')")
    page.click("#stop-button")  # over REST: there is no socket
    wait_js(page, live_app, "document.querySelector('#run-status').textContent === 'stopped'", 10)
    assert errors == []
