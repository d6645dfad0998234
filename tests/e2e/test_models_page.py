"""The models page in a real Chromium against the real stack (uvicorn, a real Celery worker on
both queues, Redis): versions registered from runs (tiny random Whispers with real CTranslate2
exports); Promote queues a task and the page follows it (stage, clips scored, then the result)
without leaving the page; a second action meanwhile is refused; roll back, compare clip by clip,
delete with a typed confirmation (plain forms)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from tests.e2e.conftest import ROOT, start_live_app
from tests.training_jobs.processes import start_worker, stop_process

REDIS_E2E_URL = os.environ.get("S2S_E2E_REDIS_URL", "redis://127.0.0.1:6379/10")
STACK_ENV = {"REDIS_URL": REDIS_E2E_URL, "CELERY_BROKER_URL": REDIS_E2E_URL, "CELERY_RESULT_BACKEND": REDIS_E2E_URL}

REGISTER = """
from pathlib import Path
from tests.conftest import tone
from tests.pipeline.training_fixtures import make_tiny_whisper
from tests.training_jobs.registry_fixtures import make_snapshot, succeeded_run
from training_jobs import services
base = Path({base!r})
# Three clips the versions disagree on, then nine all get right: enough clips to watch the scoring.
more = [f"number {{i}} is right" for i in range(9)]
refs = ["turn the music down", "open the window please", "call me back tomorrow"] + more
snap, ids = make_snapshot(base / "snapshot", refs, [tone(1.0, 180 + 40 * i) for i in range(len(refs))])
hyps = {{"a": ["turn the music down", "open the window", "call me back tomorrow"] + more,
         "b": ["turn the music up", "open the window please", "call me back tomorrow"] + more,
         "c": refs}}
for name, new in hyps.items():
    model = make_tiny_whisper(base / name / "model", seed=len(name))
    run = succeeded_run(base / name, model, snap, ids, refs, ["turn music down", "open window", "call back"] + more, new)
    print(services.model_register_run(run).name)
"""


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """A server and a worker of this module's own: promoting random models into the session
    server's live directory would make every later page that re-transcribes use them."""
    redis.Redis.from_url(REDIS_E2E_URL).flushdb()
    saved = {k: os.environ.get(k) for k in STACK_ENV}
    os.environ.update(STACK_ENV)
    try:
        server = start_live_app(tmp_path_factory.mktemp("models-page"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    server.worker_log = server.log_path.with_name("worker.log")
    try:
        worker = start_worker({**server.env, **STACK_ENV}, server.worker_log, f"e2e-models-{os.getpid()}")
    except Exception:
        server.stop()
        raise
    yield server
    stop_process(worker)
    server.stop()
    redis.Redis.from_url(REDIS_E2E_URL).flushdb()


# Every text the status line shows, recorded in the page (the task may be quicker than a look).
RECORD_STATUS = """() => {
  window.seenStatus = [];
  new MutationObserver(() => window.seenStatus.push(document.getElementById("action-text").textContent))
    .observe(document.getElementById("action-status"), {subtree: true, childList: true, characterData: true});
}"""


def promote_from_the_page(page, live_app, name: str, api_request=None, other: str = "") -> list[str]:
    """Press Promote (forced) on the version's page and wait for the result on the same page;
    returns every status text shown. With `other`, a second promotion is tried meanwhile (409)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.click(f"text={name}")
    page.check("input[name=force]")  # random weights: the export check fails, so force it
    page.evaluate(RECORD_STATUS)
    page.evaluate("() => { window.samePage = true; }")
    page.click("#promote-button")
    page.wait_for_function("() => window.seenStatus.some((t) => t !== 'Queueing…')")
    if other:
        busy = api_request("POST", f"/api/models/{other}/promote", json={"force": True})
        assert busy.status == 409 and "Another deployment action is running" in busy.json()["detail"]
    try:
        page.wait_for_selector("#action-text.ok, #action-text.error", timeout=180_000)
    except PlaywrightTimeout:
        raise AssertionError(f"no result; worker log: {live_app.worker_log.read_text()[-3000:]}") from None
    assert page.evaluate("() => window.samePage") is True  # no navigation, no reload
    seen = page.evaluate("() => window.seenStatus")
    return [t for i, t in enumerate(seen) if i == 0 or t != seen[i - 1]]  # each text once per change


@pytest.fixture(scope="module")
def versions(live_app, tmp_path_factory):
    """Three registered versions in the live server's database (made by its own manage.py)."""
    base = tmp_path_factory.mktemp("models")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", REGISTER.format(base=str(base))], cwd=ROOT,
                         env={**live_app.env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    names = [word for word in out.stdout.split() if word.startswith("run-")]
    return dict(zip("abc", names, strict=True))


def test_promote_roll_back_compare_and_delete_from_the_models_page(page, live_app, versions, screenshot_dir,
                                                                   api_request):
    page.goto("/models/")
    assert "nothing promoted yet" in page.inner_text("#live-version")
    assert page.locator("#versions-table tbody tr").count() == 3
    # Before any export the comparison is the runs' own evaluations (after it, faster-whisper's).
    page.select_option("#cmp-a", label=versions["a"])
    page.select_option("#cmp-b", label=versions["b"])
    page.click("text=Compare clip by clip")
    summary = page.inner_text("#compare-summary")
    assert f"only {versions['a']} right on 1" in summary and f"only {versions['b']} right on 1" in summary
    assert page.locator("#compare-table tbody tr").count() == 12
    page.goto("/models/")

    seen = promote_from_the_page(page, live_app, versions["a"], api_request, other=versions["b"])
    assert seen[0] == "Queueing…" and seen[-1] == f"{versions['a']} is now live (forced)."
    progress = [t for t in seen if t.startswith(f"promote {versions['a']}:")]
    assert any("Checking the export with faster-whisper" in t for t in progress), seen
    assert any(t.endswith("/ 12 clips") for t in progress), seen
    # The page's sections were re-read from the server: the new state without a reload.
    assert page.inner_text("#version-status") == "live"
    assert "not verified" in page.inner_text("#export-info")
    assert page.locator("#promote-button").count() == 0  # a live version has nothing to promote
    # A random model's transcripts are long runs without spaces: they wrap, the page stays its width.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(screenshot_dir / "models-promoted.png"), full_page=True)
    page.goto("/models/")
    seen = promote_from_the_page(page, live_app, versions["b"])
    assert any("Scoring the live model on the same clips" in t for t in seen), seen  # a live model now
    assert page.inner_text("#version-status") == "live"
    page.goto("/models/")

    assert page.inner_text("#live-version").startswith(versions["b"])
    assert page.inner_text("#previous-version").startswith(versions["a"])
    assert "forced" in page.inner_text("#events")
    page.screenshot(path=str(screenshot_dir / "models-page.png"), full_page=True)
    page.click("#rollback-button")
    page.wait_for_selector(".flash-success")
    assert "Rolled back" in page.inner_text(".flash")
    assert page.inner_text("#live-version").startswith(versions["a"])

    page.goto("/models/")
    page.click(f"text={versions['c']}")
    page.click("#delete-link")
    page.fill("#confirm", "wrong name")
    page.click("button.danger")
    assert "type the version name" in page.inner_text(".flash")
    page.fill("#confirm", versions["c"])
    page.click("button.danger")
    page.wait_for_url("**/models/")
    assert f"{versions['c']} deleted." in page.inner_text(".flash")
    assert page.locator("#versions-table tbody tr").count() == 2
    assert page.errors.console == [] and page.errors.exceptions == []  # CSP violations land in console
