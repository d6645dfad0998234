"""Every write to the capture database: edits, review flags, trash, restore, purge, metric cache.

What happens when a reviewer presses Save is `clip_update`, and nowhere else.

Rules all writes here follow:
- One SHORT transaction on the `s2s` alias per call (BEGIN IMMEDIATE, see settings): the live
  app keeps inserting rows into the same file, so we hold the write lock for milliseconds.
- A file that stays locked is retried a few times with backoff, then `ClipDatabaseLocked`
  (an OperationalError saying "locked") is raised; the API answers 503 and nothing is half-saved.
- Optimistic concurrency: `ClipMeta.version` goes up on every accepted write; a caller that
  sends an older version gets `ClipConflict` with the current version.
- Text is validated (`validate_transcript`) but never escaped: escaping is the page's job.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, OperationalError, connections, transaction
from django.utils import timezone

from .filters import CLIP_TABLE, META_TABLE, ROW_INDEX
from .models import ClipEdit, ClipMeta, ReviewSession
from .selectors import (
    METRIC_FIELDS,
    ClipMeasure,
    ClipNotFound,
    _text,
    clip_blobs,
    clip_measure,
    clip_transcripts,
    clips_lacking_meta,
)
from .transcript_rules import Budget

log = logging.getLogger(__name__)

DB = "s2s"
MAX_TRANSCRIPT_CHARS = 2000
MAX_REVIEW_SECONDS = 24 * 3600
TRASH_TABLE = "s2s_review_trash"


class ReviewInputError(ValueError):
    """Input a person must fix; `field` names the form field (the API answers 400 {field: [msg]})."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class ClipConflict(Exception):
    """Someone saved this clip after the caller loaded it; reload and re-apply."""

    def __init__(self, clip_id: int, current_version: int, sent_version: int):
        super().__init__(
            f"Clip {clip_id} changed since you loaded it (you had version {sent_version}, it is now "
            f"{current_version}). Nothing was saved: reload it and apply your edit again."
        )
        self.clip_id, self.current_version, self.sent_version = clip_id, current_version, sent_version


class ClipIdTaken(Exception):
    """Restoring would reuse an id that a live row holds now."""


class TrashNotFound(LookupError):
    """No trashed clip with this trash id (purged or never there)."""


class ClipDatabaseLocked(OperationalError):
    """The capture file stayed locked through every retry; nothing was written."""


def validate_transcript(text) -> str:
    """Trimmed text, or ReviewInputError: empty, too long, control characters, broken Unicode."""
    if not isinstance(text, str):
        raise ReviewInputError("transcript", "Transcript must be text.")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ReviewInputError("transcript", "Transcript is empty. Type what is said, or delete the clip.")
    if len(text) > MAX_TRANSCRIPT_CHARS:
        raise ReviewInputError(
            "transcript", f"Transcript is {len(text)} characters; the limit is {MAX_TRANSCRIPT_CHARS}."
        )
    bad = sorted({c for c in text if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cs")})
    if bad:
        codes = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise ReviewInputError("transcript", f"Transcript contains control characters ({codes}); remove them.")
    return text


_VERSION_RE = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


def parse_version(value) -> int | None:
    """`If-Match: "3"` (or W/"3", 3, or a body `version`) -> 3; None when not sent."""
    if value is None or value == "" or value == "*":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _VERSION_RE.match(str(value))
    if not m:
        raise ReviewInputError("version", f"Version {str(value)[:40]!r} is not a number like \"3\" (the ETag you got).")
    return int(m.group(1))


def _is_locked(error: Exception) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _write(work: Callable, *, what: str):
    """Run `work` in one short IMMEDIATE transaction, retrying while the file is locked."""
    attempts = getattr(settings, "S2S_WRITE_ATTEMPTS", 3)
    backoff = getattr(settings, "S2S_WRITE_BACKOFF_S", 0.1)
    for attempt in range(attempts):
        try:
            with transaction.atomic(using=DB):
                return work()
        except OperationalError as e:
            if not _is_locked(e) or isinstance(e, ClipDatabaseLocked):
                raise
            if attempt == attempts - 1:
                raise ClipDatabaseLocked(
                    f"The clip database is locked (the live app is writing); {what} was not saved after {attempts} tries."
                ) from e
            log.warning("s2s database locked during %s, retry %d/%d", what, attempt + 1, attempts - 1)
            time.sleep(backoff * (3 ** attempt))


def _username(user) -> str:
    return user.get_username() if user is not None and getattr(user, "is_authenticated", False) else ""


def _meta_for(clip_id: int) -> ClipMeta:
    return ClipMeta.objects.using(DB).filter(clip_id=clip_id).first() or ClipMeta(clip_id=clip_id, version=1)


def _bump_versions(cur, ids: Iterable[int], now) -> None:
    """New version for clips changed in bulk (trash, restore, admin actions): stale ETags then fail."""
    stamp = connections[DB].ops.adapt_datetimefield_value(now)
    cur.executemany(
        f"INSERT INTO {META_TABLE} (clip_id, version, updated_at) VALUES (%s, 2, %s)"
        " ON CONFLICT(clip_id) DO UPDATE SET version = version + 1, updated_at = excluded.updated_at",
        [(i, stamp) for i in ids],
    )


def clip_update(clip_id: int, user, if_match=None, *, transcript=None, is_reviewed=None, review_seconds=None) -> int:
    """Save a reviewer's change; returns the new version.

    Keeps the transcript Whisper wrote the first time it is edited, records an edit row per
    changed field and the seconds spent, and bumps the version, all in one short transaction.
    """
    if transcript is not None:
        transcript = validate_transcript(transcript)
    expected = parse_version(if_match)
    if review_seconds is not None:
        try:
            review_seconds = float(review_seconds)
        except (TypeError, ValueError):
            raise ReviewInputError("review_seconds", "review_seconds must be a number of seconds.") from None
        if not 0 <= review_seconds <= MAX_REVIEW_SECONDS:
            raise ReviewInputError("review_seconds", f"review_seconds must be between 0 and {MAX_REVIEW_SECONDS}.")
    username = _username(user)

    def work():
        with connections[DB].cursor() as cur:
            row = cur.execute(f"SELECT transcript, is_reviewed FROM {CLIP_TABLE} WHERE id = %s", [clip_id]).fetchone()
            if row is None:
                raise ClipNotFound(clip_id)
            meta = _meta_for(clip_id)
            if expected is not None and expected != meta.version:
                raise ClipConflict(clip_id, meta.version, expected)
            now = timezone.now()
            old_text, was_reviewed = _text(row[0]), bool(row[1])
            sets, params, edits = [], [], []
            if transcript is not None and transcript != old_text:
                if meta.original_transcript is None:
                    meta.original_transcript = old_text if old_text is not None else ""
                sets.append("transcript = %s")
                params.append(transcript)
                edits.append(("transcript", old_text, transcript))
            if is_reviewed is not None and bool(is_reviewed) != was_reviewed:
                sets.append("is_reviewed = %s")
                params.append(int(bool(is_reviewed)))
                edits.append(("is_reviewed", str(int(was_reviewed)), str(int(bool(is_reviewed)))))
                meta.reviewed_at, meta.reviewed_by = (now, username) if is_reviewed else (None, "")
            if sets:
                cur.execute(f"UPDATE {CLIP_TABLE} SET {', '.join(sets)} WHERE id = %s", [*params, clip_id])
        ClipEdit.objects.using(DB).bulk_create([
            ClipEdit(clip_id=clip_id, username=username, field=f, old_value=o, new_value=n, created_at=now)
            for f, o, n in edits
        ])
        if review_seconds:
            ReviewSession.objects.using(DB).create(clip_id=clip_id, username=username, seconds=review_seconds, created_at=now)
            meta.review_seconds = (meta.review_seconds or 0) + review_seconds
        meta.version += 1
        meta.updated_at = now
        meta.save(using=DB)
        return meta.version

    version = _write(work, what=f"the change to clip {clip_id}")
    from .quality_services import clip_quality_refresh_quietly  # imports this module

    clip_quality_refresh_quietly(clip_id)
    return version


def clip_mark_reviewed(clip_id: int, user, if_match=None, *, review_seconds=None) -> int:
    return clip_update(clip_id, user, if_match, is_reviewed=True, review_seconds=review_seconds)


def clips_set_flags(ids: Iterable[int], user, *, is_reviewed: bool | None = None, is_trained: bool | None = None) -> int:
    """Bulk flag change (admin actions); returns how many clips changed."""
    ids = [int(i) for i in ids]
    username = _username(user)
    columns = {k: v for k, v in (("is_reviewed", is_reviewed), ("is_trained", is_trained)) if v is not None}
    if not ids or not columns:
        return 0

    def work():
        now = timezone.now()
        changed: set[int] = set()
        edits = []
        with connections[DB].cursor() as cur:
            marks = ", ".join(["%s"] * len(ids))
            current = cur.execute(
                f"SELECT id, is_reviewed, is_trained FROM {CLIP_TABLE} INDEXED BY {ROW_INDEX} WHERE id IN ({marks})", ids
            ).fetchall()
            for clip_id, rev, trn in current:
                values = {"is_reviewed": bool(rev), "is_trained": bool(trn)}
                for col, new in columns.items():
                    if values[col] != bool(new):
                        changed.add(clip_id)
                        edits.append(ClipEdit(clip_id=clip_id, username=username, field=col,
                                              old_value=str(int(values[col])), new_value=str(int(new)), created_at=now))
            if not changed:
                return 0
            todo = sorted(changed)
            sets = ", ".join(f"{col} = {int(bool(v))}" for col, v in columns.items())
            cur.execute(f"UPDATE {CLIP_TABLE} SET {sets} WHERE id IN ({', '.join(['%s'] * len(todo))})", todo)
            _bump_versions(cur, todo, now)
            if is_reviewed is not None:
                stamp = connections[DB].ops.adapt_datetimefield_value(now) if is_reviewed else None
                cur.executemany(
                    f"UPDATE {META_TABLE} SET reviewed_at = %s, reviewed_by = %s WHERE clip_id = %s",
                    [(stamp, username if is_reviewed else "", i) for i in todo],
                )
        ClipEdit.objects.using(DB).bulk_create(edits)
        return len(changed)

    return _write(work, what="the bulk change")


@dataclass(frozen=True)
class TranscriptChange:
    """One transcript a bulk rewrite will change, from what to what, at which version."""

    clip_id: int
    version: int
    old: str | None
    new: str
    error: str = ""  # the validation message when the new text cannot be saved (skipped)


@dataclass
class RewritePlan:
    """Everything a bulk rewrite would do: shown as the preview, then applied as is."""

    description: str
    changes: list[TranscriptChange] = field(default_factory=list)
    unchanged: int = 0

    @property
    def valid(self) -> list[TranscriptChange]:
        return [c for c in self.changes if not c.error]

    @property
    def token(self) -> str:
        """Names this exact plan: applying checks that it is still what the preview showed."""
        digest = hashlib.sha256(self.description.encode())
        for c in self.changes:
            digest.update(f"\0{c.clip_id}\0{c.version}\0{c.new}\0{c.error}".encode())
        return digest.hexdigest()[:32]


@dataclass
class RewriteResult:
    changed: int = 0
    failed: list[str] = field(default_factory=list)


def transcripts_rewrite_plan(ids: Iterable[int], rule) -> RewritePlan:
    """Apply `rule` (review.transcript_rules) to these clips' transcripts in memory; nothing is written.

    Each new text goes through `validate_transcript`, as an edit in the API would: a change that
    fails it (an empty result, control characters) is listed with the reason and never applied.
    """
    plan, budget = RewritePlan(rule.describe()), Budget()
    for clip_id, text, version in clip_transcripts([int(i) for i in ids]):
        new = rule.apply(text or "")
        budget.check()
        if new == (text or ""):
            plan.unchanged += 1
            continue
        try:
            new = validate_transcript(new)
        except ReviewInputError as e:
            plan.changes.append(TranscriptChange(clip_id, version, text, new, error=e.message))
            continue
        if new == text:
            plan.unchanged += 1
        else:
            plan.changes.append(TranscriptChange(clip_id, version, text, new))
    return plan


def clips_rewrite_transcripts(plan: RewritePlan, user) -> RewriteResult:
    """Save each valid change of a previewed plan through `clip_update` (history, original
    transcript), at the version the preview saw: a clip edited meanwhile is left alone and reported."""
    result = RewriteResult()
    for change in plan.valid:
        try:
            clip_update(change.clip_id, user, change.version, transcript=change.new)
        except ClipConflict:
            result.failed.append(f"Clip {change.clip_id} changed after the preview; it was left as it is.")
        except ClipNotFound:
            result.failed.append(f"Clip {change.clip_id} no longer exists.")
        except ReviewInputError as e:
            result.failed.append(f"Clip {change.clip_id}: {e.message}")
        else:
            result.changed += 1
    return result


def clips_record_export(ids: Iterable[int], user, fmt: str) -> int:
    """One edit-history row per exported clip (who exported it, in which format, when)."""
    username, now = _username(user), timezone.now()
    rows = [ClipEdit(clip_id=int(i), username=username, field="exported", old_value=None, new_value=fmt, created_at=now)
            for i in ids]
    for start in range(0, len(rows), 500):  # short transactions: the live app keeps writing
        chunk = rows[start:start + 500]
        _write(lambda chunk=chunk: ClipEdit.objects.using(DB).bulk_create(chunk), what="the export record")
    return len(rows)


def clip_trash(clip_id: int, user) -> int:
    """Move the whole row (blob, transcript, flags, timestamp) to the trash; returns the trash id."""
    username = _username(user)

    def work():
        now = timezone.now()
        with connections[DB].cursor() as cur:
            row = cur.execute(
                f"SELECT transcript, audio_blob, is_reviewed, is_trained, +timestamp FROM {CLIP_TABLE} WHERE id = %s", [clip_id]
            ).fetchone()
            if row is None:
                raise ClipNotFound(clip_id)
            cur.execute(
                f"INSERT INTO {TRASH_TABLE} (clip_id, transcript, audio_blob, is_reviewed, is_trained, timestamp,"
                " deleted_at, deleted_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [clip_id, *row, connections[DB].ops.adapt_datetimefield_value(now), username],
            )
            trash_id = cur.lastrowid
            cur.execute(f"DELETE FROM {CLIP_TABLE} WHERE id = %s", [clip_id])
            _bump_versions(cur, [clip_id], now)
        ClipEdit.objects.using(DB).create(clip_id=clip_id, username=username, field="trashed",
                                          old_value=None, new_value=str(trash_id), created_at=now)
        return trash_id

    return _write(work, what=f"moving clip {clip_id} to the trash")


def clips_trash(ids: Iterable[int], user) -> list[int]:
    """Trash several clips (admin action), one short transaction each so the live app keeps writing."""
    out = []
    for clip_id in ids:
        try:
            out.append(clip_trash(int(clip_id), user))
        except ClipNotFound:
            continue
    return out


def clip_restore(trash_id: int, user) -> int:
    """Put a trashed clip back under the SAME id with the same bytes; returns the clip id."""
    username = _username(user)

    def work():
        now = timezone.now()
        with connections[DB].cursor() as cur:
            row = cur.execute(
                f"SELECT clip_id, transcript, audio_blob, is_reviewed, is_trained, +timestamp FROM {TRASH_TABLE} WHERE id = %s",
                [trash_id],
            ).fetchone()
            if row is None:
                raise TrashNotFound(trash_id)
            clip_id = row[0]
            if cur.execute(f"SELECT 1 FROM {CLIP_TABLE} WHERE id = %s", [clip_id]).fetchone():
                raise ClipIdTaken(
                    f"Cannot restore: clip id {clip_id} is in use by another row now. The trashed clip stays in the trash."
                )
            try:
                cur.execute(
                    f"INSERT INTO {CLIP_TABLE} (id, transcript, audio_blob, is_reviewed, is_trained, timestamp)"
                    " VALUES (%s, %s, %s, %s, %s, %s)", list(row),
                )
            except IntegrityError as e:
                raise ClipIdTaken(f"Cannot restore: clip id {clip_id} is in use ({e}).") from None
            cur.execute(f"DELETE FROM {TRASH_TABLE} WHERE id = %s", [trash_id])
            _bump_versions(cur, [clip_id], now)
        ClipEdit.objects.using(DB).create(clip_id=clip_id, username=username, field="restored",
                                          old_value=str(trash_id), new_value=None, created_at=now)
        return clip_id

    return _write(work, what=f"restoring trash item {trash_id}")


def trash_purge(trash_ids: Iterable[int] | None = None, *, older_than_days: float | None = None) -> int:
    """Delete trashed clips for good (given ids, or older than N days, or all); returns how many.

    Their cached metrics go too; edit history stays as the audit trail.
    """
    if older_than_days is not None and older_than_days < 0:
        raise ReviewInputError("older_than_days", "older_than_days must be 0 or more.")

    def work():
        where, params = [], []
        if trash_ids is not None:
            ids = [int(i) for i in trash_ids]
            if not ids:
                return 0
            where.append(f"id IN ({', '.join(['%s'] * len(ids))})")
            params += ids
        if older_than_days is not None:
            cutoff = timezone.now() - timedelta(days=older_than_days)
            where.append("deleted_at < %s")
            params.append(connections[DB].ops.adapt_datetimefield_value(cutoff))
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with connections[DB].cursor() as cur:
            clip_ids = [r[0] for r in cur.execute(f"SELECT clip_id FROM {TRASH_TABLE}{clause}", params).fetchall()]
            cur.execute(f"DELETE FROM {TRASH_TABLE}{clause}", params)
            purged = cur.rowcount
            if clip_ids:
                marks = ", ".join(["%s"] * len(clip_ids))
                cur.execute(
                    f"DELETE FROM {META_TABLE} WHERE clip_id IN ({marks}) AND clip_id NOT IN (SELECT id FROM {CLIP_TABLE})",
                    clip_ids,
                )
        return purged

    return _write(work, what="purging the trash")


def trash_purge_one(trash_id: int) -> None:
    if not trash_purge([trash_id]):
        raise TrashNotFound(trash_id)


_UPSERT_META = (
    f"INSERT INTO {META_TABLE} (clip_id, blob_length, duration_s, problem, {', '.join(METRIC_FIELDS)})"
    f" VALUES (%s, %s, %s, %s, {', '.join(['%s'] * len(METRIC_FIELDS))})"
    " ON CONFLICT(clip_id) DO UPDATE SET blob_length = excluded.blob_length, duration_s = excluded.duration_s,"
    " problem = excluded.problem, " + ", ".join(f"{k} = excluded.{k}" for k in METRIC_FIELDS)
)


def _meta_params(clip_id: int, m: ClipMeasure) -> list:
    values = m.as_meta()
    return [clip_id, values["blob_length"], values["duration_s"], values["problem"], *[values[k] for k in METRIC_FIELDS]]


def clipmeta_save(clip_id: int, measured: ClipMeasure) -> bool:
    """Cache what decoding one clip taught us, if the file is free right now.

    Called while answering a GET, so it must never fail the request or make it wait on the
    live app: one try with a short busy timeout; the next visit caches it otherwise.
    """
    conn = connections[DB]
    try:
        with conn.cursor() as cur:
            cur.execute("PRAGMA busy_timeout = 50")
            try:
                cur.execute(_UPSERT_META, _meta_params(clip_id, measured))
            finally:
                cur.execute(f"PRAGMA busy_timeout = {settings.S2S_SQLITE_BUSY_TIMEOUT_MS}")
        return True
    except OperationalError as e:
        log.info("could not cache metrics of clip %s now: %s", clip_id, e)
        return False


def clipmeta_fill(*, limit: int | None = None, batch: int = 50, on_batch: Callable[[int, int], None] | None = None) -> dict:
    """Decode and measure clips lacking cached metrics, `batch` at a time; returns counts.

    Blobs are read outside any transaction; each batch is written in one short transaction.
    Used by `python manage.py scanclips`; safe to run while the live app and reviewers write.
    """
    scanned = problems = 0
    while limit is None or scanned < limit:
        size = batch if limit is None else min(batch, limit - scanned)
        ids = clips_lacking_meta(size)
        if not ids:
            break
        blobs = clip_blobs(ids)
        measured = [(i, clip_measure(blobs[i])) for i in ids if i in blobs]

        def work(measured=measured):
            with connections[DB].cursor() as cur:
                cur.executemany(_UPSERT_META, [_meta_params(i, m) for i, m in measured])

        _write(work, what="the metric cache")
        scanned += len(measured)
        problems += sum(1 for _, m in measured if m.problem)
        if on_batch:
            on_batch(scanned, problems)
    return {"scanned": scanned, "problems": problems}
