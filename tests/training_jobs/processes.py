"""Process helpers shared by the worker tests and the dashboard browser test: polling, and a
real `celery worker` subprocess started and stopped cleanly."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def start_worker(env: dict, log_path: Path, name: str) -> subprocess.Popen:
    """A real `celery worker -Q data,gpu` (prefork, prefetch 1), returned once it says ready."""
    log = log_path.open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "s2s_trainer", "worker", "-Q", "data,gpu", "-c", "2",
         "--prefetch-multiplier", "1", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"{name}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: proc.poll() is not None or "ready." in log_path.read_text(), timeout=60, what="celery worker")
    except AssertionError:
        stop_process(proc)
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"celery worker exited: {log_path.read_text()[-3000:]}")
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


