"""The live model directory: atomic promotion, backup, rollback, and promotions killed mid-way.

Real parts only: tiny random Whispers converted by CTranslate2's own converter, faster-whisper
loading whatever `current` points to, and real processes killed with SIGKILL between steps.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline.training_fixtures import make_tiny_whisper
from training_jobs.pipeline import deploy
from training_jobs.pipeline.export import export_ct2

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two different real CTranslate2 exports (random tiny Whispers, seeds 0 and 1)."""
    base = tmp_path_factory.mktemp("exports")
    return {name: export_ct2(make_tiny_whisper(base / f"hf-{name}", seed=seed), base / f"ct2-{name}", "float32")
            for name, seed in (("alpha", 0), ("beta", 1))}


def load(path):
    from faster_whisper import WhisperModel

    return WhisperModel(str(path), device="cpu", compute_type="float32", cpu_threads=1)


def same_weights(a: Path, b: Path) -> bool:
    return (a / "model.bin").read_bytes() == (b / "model.bin").read_bytes()


def test_first_promotion_makes_a_loadable_live_model_and_a_marker(tmp_path, exports):
    root = tmp_path / "live"
    assert deploy.live_model_dir(root) is None
    switch = deploy.promote(root, "alpha", exports["alpha"], event={"model": "run-1"})
    live = deploy.live_model_dir(root)
    assert switch.live == "alpha" and switch.previous is None
    assert live == (root / "versions" / "alpha").resolve() and same_weights(live, exports["alpha"])
    assert os.readlink(root / "current") == "versions/alpha"  # relative: the directory can move
    assert deploy.read_marker(root)["version"] == "alpha" and deploy.read_marker(root)["model"] == "run-1"
    assert load(live).model.is_multilingual is False


def test_second_promotion_keeps_the_first_as_backup_and_rollback_swaps_them(tmp_path, exports):
    root = tmp_path / "live"
    deploy.promote(root, "alpha", exports["alpha"])
    first_marker = (root / "CHANGED").stat().st_mtime_ns
    time.sleep(0.01)
    switch = deploy.promote(root, "beta", exports["beta"])
    assert (switch.live, switch.previous) == ("beta", "alpha")
    assert deploy.live_name(root) == "beta" and deploy.previous_name(root) == "alpha"
    assert (root / "CHANGED").stat().st_mtime_ns > first_marker

    back = deploy.rollback(root)
    assert (back.live, back.previous) == ("alpha", "beta")
    assert deploy.live_name(root) == "alpha" and deploy.previous_name(root) == "beta"
    assert deploy.read_marker(root)["event"] == "rolled_back"
    load(deploy.live_model_dir(root))
    assert deploy.rollback(root).live == "beta"  # a second rollback undoes the first


def test_rollback_without_a_backup_is_refused_and_changes_nothing(tmp_path, exports):
    root = tmp_path / "live"
    with pytest.raises(deploy.DeployError, match="no previous live model"):
        deploy.rollback(root)
    deploy.promote(root, "alpha", exports["alpha"])
    with pytest.raises(deploy.DeployError, match="no previous live model"):
        deploy.rollback(root)
    assert deploy.live_name(root) == "alpha"


def test_promoting_the_live_version_again_only_rewrites_the_marker(tmp_path, exports):
    root = tmp_path / "live"
    deploy.promote(root, "alpha", exports["alpha"])
    deploy.promote(root, "beta", exports["beta"])
    again = deploy.promote(root, "beta", exports["beta"])
    assert again.changed is False and deploy.previous_name(root) == "alpha"


def test_a_broken_source_is_refused_before_anything_live_changes(tmp_path, exports):
    root = tmp_path / "live"
    deploy.promote(root, "alpha", exports["alpha"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"\0" * 10)
    with pytest.raises(deploy.DeployError, match="not a faster-whisper model directory"):
        deploy.promote(root, "broken", broken)
    with pytest.raises(deploy.DeployError, match="invalid version name"):
        deploy.promote(root, "../escape", exports["beta"])
    assert deploy.live_name(root) == "alpha" and not (root / "versions" / "broken").exists()


def test_live_and_backup_versions_cannot_be_removed(tmp_path, exports):
    root = tmp_path / "live"
    deploy.promote(root, "alpha", exports["alpha"])
    deploy.promote(root, "beta", exports["beta"])
    for name in ("alpha", "beta"):
        with pytest.raises(deploy.DeployError, match="cannot be deleted"):
            deploy.remove_version(root, name)
    deploy.stage_version(root, "gamma", exports["alpha"])
    assert deploy.remove_version(root, "gamma") is True and not (root / "versions" / "gamma").exists()


def run_in_process(code: str, kill_at: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(deploy.KILL_AT_ENV, None)
    if kill_at:
        env[deploy.KILL_AT_ENV] = kill_at
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("step", deploy.STEPS)
def test_a_promotion_killed_at_any_step_leaves_a_complete_live_model_and_a_retry_finishes_it(tmp_path, exports, step):
    root = tmp_path / "live"
    deploy.promote(root, "alpha", exports["alpha"])
    code = (f"from training_jobs.pipeline import deploy; "
            f"deploy.promote({str(root)!r}, 'beta', {str(exports['beta'])!r})")

    killed = run_in_process(code, kill_at=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    live = deploy.live_model_dir(root)
    expected = "beta" if step == "switched" else "alpha"  # after the switch the new model is complete and live
    assert live is not None and live.name == expected
    assert same_weights(live, exports[expected])
    load(live)  # what the live app would load right now works

    retried = run_in_process(code, kill_at=None)
    assert retried.returncode == 0, retried.stderr
    assert deploy.live_name(root) == "beta" and deploy.previous_name(root) == "alpha"
    assert same_weights(deploy.live_model_dir(root), exports["beta"])
    assert deploy.read_marker(root)["version"] == "beta"


def test_a_rollback_killed_after_the_switch_leaves_the_old_model_live(tmp_path, exports):
    root = tmp_path / "live"
    deploy.promote(root, "alpha", exports["alpha"])
    deploy.promote(root, "beta", exports["beta"])
    killed = run_in_process(f"from training_jobs.pipeline import deploy; deploy.rollback({str(root)!r})", "switched")
    assert killed.returncode == -signal.SIGKILL
    assert deploy.live_name(root) == "alpha"
    load(deploy.live_model_dir(root))


def test_the_example_live_app_hot_swaps_when_the_marker_changes(tmp_path, exports):
    """docs/examples/live_app.py polling the marker (no Redis): it starts on alpha and moves to
    beta after a promotion, and to alpha again after a rollback, without a restart."""
    root = tmp_path / "live"
    deploy.promote(root, "alpha", exports["alpha"])
    app = subprocess.Popen([sys.executable, str(ROOT / "docs" / "examples" / "live_app.py"), "--live-dir", str(root),
                            "--poll", "0.2", "--max-seconds", "120"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert next_event(app)["version"] == "alpha"
        deploy.promote(root, "beta", exports["beta"])
        assert next_event(app) == {"event": "loaded", "version": "beta", "from": "current", "failures": []}
        deploy.rollback(root)
        assert next_event(app)["version"] == "alpha"
    finally:
        app.kill()
        app.wait()


def next_event(app) -> dict:
    line = app.stdout.readline()
    assert line, app.stderr.read()[-3000:]
    return json.loads(line)
