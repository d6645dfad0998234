"""One deployment action at a time: export, promote, rollback and delete share one Redis key.

The key holds who has the slot (`token`, `action`, `version`, `since`) and expires: a holder
refreshes it while it works (every scored clip, at most every few seconds), so a killed worker
frees the slot after at most S2S_DEPLOY_LOCK_SECONDS. A queued task's token is its Celery task
id: the page takes the slot when it enqueues, the task confirms it when it starts (and takes it
again if it expired while queued, unless someone else holds it by then).
"""
from __future__ import annotations

import json
import time

from django.conf import settings

from training_jobs.control import redis_client

KEY = "s2s:deploy:action"

# Refresh or release only if the slot is still ours (compare the token inside Redis, atomically).
_REFRESH = """
local v = redis.call('GET', KEYS[1])
if not v then return -1 end
if cjson.decode(v)['token'] ~= ARGV[1] then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
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


def acquire(token: str, action: str, version: str = "", task_id: str = "") -> dict | None:
    """Take the slot; None when taken, else the holder's record (for the refusal message)."""
    record = {"token": token, "action": action, "version": version, "task_id": task_id, "since": time.time()}
    if redis_client().set(KEY, json.dumps(record), nx=True, ex=ttl_s()):
        return None
    return holder() or acquire(token, action, version, task_id)  # expired between the two calls


def refresh(token: str) -> int:
    """HELD (ours, expiry pushed back), FREE (expired: nobody holds it) or TAKEN (someone else)."""
    return int(redis_client().eval(_REFRESH, 1, KEY, token, ttl_s()))


def release(token: str) -> bool:
    return bool(redis_client().eval(_RELEASE, 1, KEY, token))


def holder() -> dict | None:
    """Who holds the slot now (None when free)."""
    raw = redis_client().get(KEY)
    return json.loads(raw) if raw else None
