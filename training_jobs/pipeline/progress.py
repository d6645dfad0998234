"""The small typed events the pipeline reports, and how a run is paused or stopped.

tqdm, the Channels relay and tests are three listeners of the same `Progress` event.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

STAGES = ("preparing", "loading", "training", "evaluating", "exporting", "done")


@dataclass
class Progress:
    """One progress report. Unknown values stay None (the dashboard shows a dash)."""

    stage: str
    step: int = 0
    total: int = 0
    epoch: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    wer: float | None = None
    learning_rate: float | None = None
    samples_per_s: float | None = None
    gpu_memory_mb: float | None = None
    eta_s: float | None = None
    message: str = ""
    time: float = field(default_factory=time.time)

    @property
    def percent(self) -> float:
        return round(100.0 * self.step / self.total, 1) if self.total else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "percent": self.percent}


ProgressCallback = Callable[[Progress], None]


class RunStopped(Exception):
    """Raised inside the pipeline after a stop request, once a checkpoint is written."""


class RunControl(Protocol):
    """What the training loop asks between steps. Implementations: `LocalControl` (threads,
    tests), a Redis-backed one in `training_jobs` (the dashboard's buttons)."""

    def should_stop(self) -> bool: ...

    def wait_while_paused(self) -> None:
        """Block while the run is paused; return at once when it is not (or a stop arrives)."""


class LocalControl:
    """In-process control for the CLI and tests."""

    def __init__(self):
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self):
        self._stop.set()
        self._running.set()

    def pause(self):
        self._running.clear()

    def resume(self):
        self._running.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def wait_while_paused(self) -> None:
        while not self._running.wait(timeout=0.2):
            if self._stop.is_set():
                return


def noop(_event: Progress) -> None:
    """A callback that ignores progress."""
