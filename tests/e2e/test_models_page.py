"""The models page in a real Chromium against the real server: versions registered from runs
(tiny random Whispers with real CTranslate2 exports), promote with force, roll back, compare
clip by clip, delete with a typed confirmation. Everything is plain forms: no script at all."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT, start_live_app

REGISTER = """
from pathlib import Path
from tests.conftest import tone
from tests.pipeline.training_fixtures import make_tiny_whisper
from tests.training_jobs.registry_fixtures import make_snapshot, succeeded_run
from training_jobs import services
base = Path({base!r})
refs = ["turn the music down", "open the window please", "call me back tomorrow"]
snap, ids = make_snapshot(base / "snapshot", refs, [tone(1.0, 180 + 40 * i) for i in range(3)])
hyps = {{"a": ["turn the music down", "open the window", "call me back tomorrow"],
         "b": ["turn the music up", "open the window please", "call me back tomorrow"],
         "c": refs}}
for name, new in hyps.items():
    model = make_tiny_whisper(base / name / "model", seed=len(name))
    run = succeeded_run(base / name, model, snap, ids, refs, ["turn music down", "open window", "call back"], new)
    print(services.model_register_run(run).name)
"""


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """A server of this module's own: promoting random models into the session server's live
    directory would make every later page that re-transcribes (quality checks) use them."""
    server = start_live_app(tmp_path_factory.mktemp("models-page"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def versions(live_app, tmp_path_factory):
    """Three registered versions in the live server's database (made by its own manage.py)."""
    base = tmp_path_factory.mktemp("models")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", REGISTER.format(base=str(base))], cwd=ROOT,
                         env={**live_app.env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    names = [word for word in out.stdout.split() if word.startswith("run-")]
    return dict(zip("abc", names, strict=True))


def test_promote_roll_back_compare_and_delete_from_the_models_page(page, live_app, versions, screenshot_dir):
    page.goto("/models/")
    assert "nothing promoted yet" in page.inner_text("#live-version")
    assert page.locator("#versions-table tbody tr").count() == 3
    # Before any export the comparison is the runs' own evaluations (after it, faster-whisper's).
    page.select_option("#cmp-a", label=versions["a"])
    page.select_option("#cmp-b", label=versions["b"])
    page.click("text=Compare clip by clip")
    summary = page.inner_text("#compare-summary")
    assert f"only {versions['a']} right on 1" in summary and f"only {versions['b']} right on 1" in summary
    assert page.locator("#compare-table tbody tr").count() == 3
    page.goto("/models/")

    for name in (versions["a"], versions["b"]):
        page.click(f"text={name}")
        page.check("input[name=force]")  # random weights: the export check fails, so force it
        if name == versions["a"]:  # a submitted form says the server is working and cannot resubmit
            page.evaluate("() => document.getElementById('promote-button').form"
                          ".addEventListener('submit', (e) => e.preventDefault())")  # stay on the page to look
            page.click("#promote-button")
            assert page.is_visible("#busy-status") and page.inner_text("#busy-status").startswith("Promoting")
            assert page.locator("#promote-button").is_disabled()
            page.reload()
            page.check("input[name=force]")
        page.click("#promote-button")
        page.wait_for_selector(".flash-success", timeout=120_000)
        assert f"{name} is now live." in page.inner_text(".flash")
        assert page.inner_text("#version-status") == "live"
        assert "not verified" in page.inner_text("#export-info")
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
