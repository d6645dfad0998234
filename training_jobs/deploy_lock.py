"""One deployment action at a time: export, promote, rollback and delete share one Redis key.

The key holds who has the slot (`token`, `action`, `version`, `since`, and the working process's
`host` and `pid`) and expires: a holder refreshes it while it works (every scored clip, at most
every few seconds), so a killed worker frees the slot after at most S2S_DEPLOY_LOCK_SECONDS, and
at once for a taker on the same machine, which sees that the holder's process is gone. A queued
task's token is its Celery task id: the page takes the slot when it enqueues (no process yet),
the task claims it when it starts (and takes it again if it expired while queued, unless someone
else holds it by then).
"""
from __future__ import annotations

import json
import os
import socket
import time

from django.conf import settings

from training_jobs.control import redis_client

KEY = "s2s:deploy:action"

# Refresh (optionally rewriting the record) or release only if the slot is still ours: the token
# is compared inside Redis, atomically.
_REFRESH = """
local v = redis.call('GET', KEYS[1])
if not v then return -1 end
if cjson.decode(v)['token'] ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2]) else redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
HELD, FREE, TAKEN = 1, -1, 0


def ttl_s() -> int:
    return int(settings.S2S_DEPLOY_LOCK_SECONDS)


def acquire(token: str, action: str, version: str = "", task_id: str = "", *, here: bool = True) -> dict | None:
    """Take the slot; None when done, else the holder's record (for the refusal message). `here`:
    this process does the work (False when queueing a task: the worker claims it later)."""
    record = json.dumps({"token": token, "action": action, "version": version, "task_id": task_id,
                         "since": time.time(), **(_process() if here else {})})
    for _ in range(3):
        if redis_client().set(KEY, record, nx=True, ex=ttl_s()):
            return None
        current = holder()
        if current is None:
            continue  # expired between the two calls
        if not _is_dead(current):
            return current
        release(current["token"])  # its process is gone (killed): nobody will give it back
    return holder()


def refresh(token: str, claim: dict | None = None) -> int:
    """HELD (ours, expiry pushed back), FREE (expired: nobody holds it) or TAKEN (someone else).
    With `claim` (the record), rewrite it naming this process as the one at work."""
    value = json.dumps({**claim, **_process()}) if claim else ""
    return int(redis_client().eval(_REFRESH, 1, KEY, token, ttl_s(), value))


def release(token: str) -> bool:
    return bool(redis_client().eval(_RELEASE, 1, KEY, token))


def holder() -> dict | None:
    """Who holds the slot now (None when free)."""
    raw = redis_client().get(KEY)
    return json.loads(raw) if raw else None


def _process() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _is_dead(record: dict) -> bool:
    """The holder's process is on this machine and no longer exists (only then can we tell)."""
    if record.get("host") != socket.gethostname() or not record.get("pid"):
        return False
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, someone else's
        return False
    return False
