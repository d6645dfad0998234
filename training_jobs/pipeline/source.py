"""Read reviewed clips out of the live app's SQLite file, and mark them trained afterwards.

Django-free on purpose: the Celery worker, the `starttraining` command and the tests all call
this with a path. The live app may be writing to the same file while we read, so reads go
through a read-only URI with a busy timeout, and the one write we ever make (`is_trained = 1`)
is a short transaction with retries, preceded by an online backup of the whole file.
"""
from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from review.audio import DEFAULT_MAX_SECONDS, ClipDecodeError, decode_pcm

CLIP_TABLE = "s2s_training_data"
BUSY_TIMEOUT_MS = 5000


class SourceError(RuntimeError):
    """The capture database cannot be read or updated (missing file, wrong schema, locked)."""


@dataclass(frozen=True)
class ClipRecord:
    """One reviewed clip, decoded. `content_hash` pins the exact audio + text that was used."""

    id: int
    transcript: str
    samples: np.ndarray  # float32, 16 kHz mono, in [-1, 1)
    content_hash: str


@dataclass(frozen=True)
class ExcludedClip:
    """A clip left out of training, with a reason a reviewer can act on."""

    id: int
    reason: str
    code: str

    def as_dict(self) -> dict:
        return {"id": self.id, "code": self.code, "reason": self.reason}


def content_hash(transcript: str, pcm: np.ndarray) -> str:
    """sha256 over the text and the decoded int16 PCM: stable whatever zlib level wrote the blob."""
    h = hashlib.sha256()
    h.update(transcript.encode("utf-8"))
    h.update(b"\0")
    h.update(np.asarray(pcm, dtype="<i2").tobytes())
    return h.hexdigest()[:16]


def _connect_readonly(s2s_path: str | Path) -> sqlite3.Connection:
    path = Path(s2s_path)
    if not path.is_file():
        raise SourceError(f"S2S database not found: {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def read_reviewed_clips(
    s2s_path: str | Path, *, only_untrained: bool = False, max_seconds: float = DEFAULT_MAX_SECONDS
) -> tuple[list[ClipRecord], list[ExcludedClip]]:
    """All clips with is_reviewed = 1 (optionally also is_trained = 0), decoded, in id order.

    Rows whose audio cannot be decoded do not stop the run: they come back in `excluded` with
    the decoder's message, so the report can list them.
    """
    sql = f"SELECT id, transcript, audio_blob FROM {CLIP_TABLE} WHERE is_reviewed = 1"
    if only_untrained:
        sql += " AND COALESCE(is_trained, 0) = 0"
    sql += " ORDER BY id"
    records: list[ClipRecord] = []
    excluded: list[ExcludedClip] = []
    conn = _connect_readonly(s2s_path)
    try:
        try:
            rows = conn.execute(sql)
            for clip_id, transcript, blob in rows:
                try:
                    pcm = decode_pcm(blob, max_seconds=max_seconds)
                except ClipDecodeError as e:
                    excluded.append(ExcludedClip(clip_id, f"audio cannot be decoded: {e}", e.code))
                    continue
                text = transcript or ""
                samples = pcm.astype(np.float32) / 32768.0
                records.append(ClipRecord(clip_id, text, samples, content_hash(text, pcm)))
        except sqlite3.DatabaseError as e:
            raise SourceError(f"cannot read {CLIP_TABLE} from {s2s_path}: {e}") from e
    finally:
        conn.close()
    return records, excluded


def backup_database(s2s_path: str | Path, backup_dir: str | Path) -> Path:
    """Copy the live file with SQLite's online backup API (consistent even while it is written)."""
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    target = backup_dir / f"{Path(s2s_path).stem}-before-mark-trained-{stamp}.db"
    src = _connect_readonly(s2s_path)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return target


def mark_trained(
    s2s_path: str | Path, clip_ids, backup_dir: str | Path, *, attempts: int = 8, retry_wait_s: float = 0.25,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> Path:
    """Back the database up, then set is_trained = 1 on `clip_ids`. Returns the backup's path.

    The update is one short transaction; when the live app holds the write lock longer than the
    busy timeout we retry a few times with a growing wait rather than fail the whole run.
    """
    ids = sorted({int(i) for i in clip_ids})
    backup = backup_database(s2s_path, backup_dir)
    if not ids:
        return backup
    last_error: Exception | None = None
    for attempt in range(attempts):
        conn = sqlite3.connect(s2s_path, timeout=busy_timeout_ms / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            conn.execute("BEGIN IMMEDIATE")
            for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                conn.execute(
                    f"UPDATE {CLIP_TABLE} SET is_trained = 1 WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
            conn.execute("COMMIT")
            return backup
        except sqlite3.OperationalError as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if "locked" not in str(e) and "busy" not in str(e):
                raise SourceError(f"cannot mark clips trained in {s2s_path}: {e}") from e
            last_error = e
            time.sleep(retry_wait_s * (attempt + 1))
        finally:
            conn.close()
    raise SourceError(
        f"database stayed locked; clips not marked trained after {attempts} attempts ({last_error}). "
        f"Backup kept at {backup}"
    )
