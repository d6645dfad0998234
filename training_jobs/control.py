"""Pause / resume / stop for a run that executes in another process, maybe on another machine.

The dashboard's buttons write one Redis key per run; the training loop polls it between steps
through `RedisRunControl` (the pipeline's `RunControl` protocol). Reads are rate-limited to one
GET per `poll_s` so a fast loop costs nothing, and a request reaches the loop within
`poll_s` + one step.
"""
from __future__ import annotations

import time

import redis
from django.conf import settings

RUNNING, PAUSED, STOPPED = "run", "pause", "stop"
KEY_TTL_S = 14 * 24 * 3600


def control_key(run_id: int) -> str:
    return f"s2s:run:{run_id}:control"


def redis_client() -> redis.Redis:
    """A client for REDIS_URL (read at call time, so tests can point it at their own db number)."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=5)


def control_set(run_id: int, state: str) -> None:
    if state not in (RUNNING, PAUSED, STOPPED):
        raise ValueError(f"unknown control state {state!r}")
    redis_client().set(control_key(run_id), state, ex=KEY_TTL_S)


def control_get(run_id: int) -> str:
    value = redis_client().get(control_key(run_id))
    return value.decode() if value else RUNNING


class RedisRunControl:
    """`RunControl` backed by Redis; one instance per task execution."""

    def __init__(self, run_id: int, *, poll_s: float = 0.5, client: redis.Redis | None = None,
                 on_pause=None, on_resume=None):
        self.run_id = run_id
        self.poll_s = poll_s
        self._client = client or redis_client()
        self._key = control_key(run_id)
        self._state = RUNNING
        self._read_at = 0.0
        self._on_pause, self._on_resume = on_pause, on_resume

    def state(self, *, fresh: bool = False) -> str:
        now = time.monotonic()
        if fresh or now - self._read_at >= self.poll_s:
            try:
                value = self._client.get(self._key)
            except redis.RedisError:
                # Redis blinking must not kill hours of training: keep the last known state.
                return self._state
            self._state = value.decode() if value else RUNNING
            self._read_at = now
        return self._state

    def should_stop(self) -> bool:
        return self.state() == STOPPED

    def wait_while_paused(self) -> None:
        if self.state() != PAUSED:
            return
        if self._on_pause:
            self._on_pause()
        while self.state(fresh=True) == PAUSED:
            time.sleep(min(self.poll_s, 0.25))
        if self._on_resume and self._state == RUNNING:
            self._on_resume()
