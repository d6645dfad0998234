"""The live model directory: where the live S2S app loads its faster-whisper model, and how a new
model gets there without the app ever seeing a half-written or missing model.

Layout of `S2S_LIVE_MODEL_DIR` (the contract with the live app, see docs/live-app.md):

    versions/<name>/     one complete CTranslate2 directory per deployed model, never changed once there
    current  -> versions/<name>   the model to load (a relative symlink)
    previous -> versions/<name>   the one before it: the backup a rollback (or a failing load) returns to
    CHANGED              marker, rewritten after every switch (JSON: event, version, previous, time)

Every switch is one `os.replace` of a freshly made symlink over `current`, the only atomic way to
repoint a name on POSIX; files and directories are fsynced before a name points at them. A process
killed at any step therefore leaves `current` on a complete model (the old one or the new one),
and running the same promotion again finishes it. Django-free: services.py adds the registry,
the guard and the Redis notification around these steps.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

VERSIONS = "versions"
CURRENT = "current"
PREVIOUS = "previous"
MARKER = "CHANGED"
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
# Test hook: the process SIGKILLs itself when it reaches this step (see `_step`).
KILL_AT_ENV = "S2S_DEPLOY_KILL_AT"
STEPS = ("copying", "staged", "backed_up", "switched")


class DeployError(RuntimeError):
    """The live directory cannot be changed as asked; nothing live was touched."""


@dataclass(frozen=True)
class Switch:
    """What a promotion or rollback did: the version now live and the one kept as the backup."""

    live: str
    previous: str | None
    path: Path
    changed: bool = True


def is_complete_model(path: Path) -> bool:
    """A directory faster-whisper can load: model weights, config and tokenizer present."""
    return path.is_dir() and all((path / name).is_file() for name in REQUIRED_FILES)


def live_model_dir(root: str | Path | None) -> Path | None:
    """The live model's CTranslate2 directory (resolved, absolute), or None when nothing is live.

    The one function any reader (the quality checks, the live app) should call to find the model.
    """
    return _target(Path(root), CURRENT) if root else None


def previous_model_dir(root: str | Path | None) -> Path | None:
    """The backup model's directory (the one a rollback returns to), or None."""
    return _target(Path(root), PREVIOUS) if root else None


def live_name(root: str | Path | None) -> str | None:
    path = live_model_dir(root)
    return path.name if path else None


def previous_name(root: str | Path | None) -> str | None:
    path = previous_model_dir(root)
    return path.name if path else None


def _target(root: Path, link: str) -> Path | None:
    path = root / link
    if not path.is_symlink() and not path.is_dir():
        return None
    resolved = path.resolve()
    return resolved if is_complete_model(resolved) else None


def check_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or name in (CURRENT, PREVIOUS, MARKER):
        raise DeployError(f"invalid version name {name!r}")
    return name


def stage_version(root: str | Path, name: str, source: str | Path) -> Path:
    """Copy a CTranslate2 directory to `versions/<name>` (temp copy, fsync, rename): afterwards the
    directory is complete or absent, never partial. An existing complete copy is kept (retries)."""
    root, source = Path(root), Path(source)
    target = root / VERSIONS / check_name(name)
    if is_complete_model(target):
        return target
    if not is_complete_model(source):
        raise DeployError(f"{source} is not a faster-whisper model directory (needs {', '.join(REQUIRED_FILES)})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=target.parent))
    try:
        for item in source.iterdir():
            if item.is_file():
                shutil.copyfile(item, tmp / item.name)
                _fsync_file(tmp / item.name)
                _step("copying")
        _fsync_dir(tmp)
        if target.exists():  # an incomplete leftover from some other tool: replace it
            shutil.rmtree(target)
        tmp.rename(target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def promote(root: str | Path, name: str, source: str | Path, *, event: dict | None = None) -> Switch:
    """Make `source` the live model as `versions/<name>`; the model live before becomes `previous`.

    Steps: stage the copy -> point `previous` at the old live model -> point `current` at the new
    one (the switch) -> rewrite the marker. Promoting the live version again only rewrites the
    marker, so an interrupted promotion is finished by running it again.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stage_version(root, name, source)
    _step("staged")
    old = live_name(root)
    if old == name:
        _write_marker(root, {"event": "promoted", "version": name, "previous": previous_name(root), **(event or {})})
        return Switch(name, previous_name(root), root / VERSIONS / name, changed=False)
    if old:
        _point(root, PREVIOUS, old)
    _step("backed_up")
    _point(root, CURRENT, name)
    _step("switched")
    _write_marker(root, {"event": "promoted", "version": name, "previous": old, **(event or {})})
    return Switch(name, old, root / VERSIONS / name)


def rollback(root: str | Path, *, event: dict | None = None) -> Switch:
    """Back to the previous live model in one atomic switch; the rolled-back model becomes `previous`
    (so a second rollback undoes the first)."""
    root = Path(root)
    back, now = previous_name(root), live_name(root)
    if back is None:
        raise DeployError("no previous live model to roll back to")
    if back == now:
        raise DeployError(f"the previous model {back} is already live")
    _point(root, CURRENT, back)
    _step("switched")
    if now:
        _point(root, PREVIOUS, now)
    _write_marker(root, {"event": "rolled_back", "version": back, "previous": now, **(event or {})})
    return Switch(back, now, root / VERSIONS / back)


def remove_version(root: str | Path, name: str) -> bool:
    """Delete `versions/<name>` unless it is live or the backup. True when something was removed."""
    root = Path(root)
    if name in (live_name(root), previous_name(root)):
        raise DeployError(f"{name} is the {'live' if name == live_name(root) else 'backup'} model; it cannot be deleted")
    target = root / VERSIONS / check_name(name)
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True


def read_marker(root: str | Path) -> dict | None:
    path = Path(root) / MARKER
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def dir_size(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# -- the atomic primitives ---------------------------------------------------------------------

def _point(root: Path, link: str, name: str) -> None:
    """Atomically (re)point `root/link` at `versions/<name>`: a new relative symlink, then os.replace."""
    tmp = root / f".{link}.{os.getpid()}.{time.monotonic_ns()}"
    os.symlink(os.path.join(VERSIONS, name), tmp)
    try:
        os.replace(tmp, root / link)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(root)


def _write_marker(root: Path, payload: dict) -> None:
    """Rewrite the marker atomically: pollers see a new mtime and never half a JSON document."""
    payload = {**payload, "time": time.time()}
    fd, tmp = tempfile.mkstemp(prefix=f".{MARKER}-", dir=root)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / MARKER)
    _fsync_dir(root)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _step(name: str) -> None:
    """Between two steps. For the crash tests: `S2S_DEPLOY_KILL_AT=<step>` kills this process here
    with SIGKILL (no cleanup, no finally blocks), exactly like a power cut or the OOM killer."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
