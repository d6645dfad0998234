"""Reads of clips for the API, the admin and the export; nothing here writes.

Lists and statistics never read `audio_blob` and never read a column that sits after it in
the row (see review.filters for why); they assemble a page from small indexed queries. Only
the detail, audio and peaks of one clip read its blob. Durations and audio metrics come from
`ClipMeta`, filled the first time a clip is decoded (the detail view) or by
`python manage.py scanclips`; statistics report how many clips are still unscanned.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from .audio import AudioMetrics, ClipDecodeError, decode_pcm, measure
from .export import ExportClip
from .filters import CLIP_TABLE, FLAGS_INDEX, META_TABLE, ROW_INDEX, ClipFilters, ClipQuery
from .models import ClipEdit, ClipMeta, ReviewSession, TrashedClip
from .quality import clip_findings
from .quality_selectors import Suggestion, clip_suggestion
from .timestamps import parse_timestamp

DB = "s2s"
METRIC_FIELDS = ("rms_dbfs", "peak_dbfs", "clipping_ratio", "silence_ratio", "snr_db")

# Human sentences for the problem codes a row can carry (decode codes come from review.audio).
PROBLEM_TEXT = {
    "null_blob": "audio_blob is NULL: there is no audio to play",
    "empty_blob": "audio_blob is empty",
    "not_zlib": "audio_blob is not zlib data",
    "truncated": "audio_blob is truncated zlib data",
    "too_long": "audio is longer than S2S_MAX_CLIP_SECONDS",
    "no_samples": "audio_blob decompresses to no samples",
    "odd_length": "PCM has an odd byte count: not int16 samples",
    "null_transcript": "transcript is NULL",
    "empty_transcript": "transcript is empty",
}
AUDIO_PROBLEMS = {"null_blob", "empty_blob", "not_zlib", "truncated", "too_long", "no_samples", "odd_length"}
SESSION_GAP = timedelta(minutes=30)


class ClipNotFound(LookupError):
    """No clip with this id in the capture database (deleted, trashed or never there)."""


def _cursor():
    """A raw cursor on the capture file.

    Timestamps are selected as `+timestamp`: Django's SQLite backend converts columns declared
    DATETIME into datetimes (None for garbage, an exception for `2025-13-45`), and a bad row must
    reach `parse_timestamp` exactly as stored. Unary plus returns the stored value unchanged.
    """
    return connections[DB].cursor()


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


@dataclass
class ClipRow:
    """One clip as lists show it: no audio, just what the review page needs per row."""

    id: int
    transcript: str | None
    original_transcript: str | None
    is_reviewed: bool
    is_trained: bool
    timestamp: str | None
    timestamp_raw: object
    duration_s: float | None
    problem: str
    problem_detail: str
    version: int


@dataclass
class ClipMeasure:
    """What decoding one blob taught us; cached into ClipMeta by services.clipmeta_save."""

    blob_length: int | None
    duration_s: float | None = None
    metrics: dict | None = None
    problem: str = ""
    problem_detail: str = ""

    def as_meta(self) -> dict:
        values = {"blob_length": self.blob_length, "duration_s": self.duration_s, "problem": self.problem}
        values.update(self.metrics or dict.fromkeys(METRIC_FIELDS))
        return values


@dataclass
class ClipDetail(ClipRow):
    metrics: dict | None = None
    warnings: list[str] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # review.quality findings: {code, message}
    suggestion: Suggestion | None = None  # the latest re-transcription by a model
    blob_length: int | None = None
    prev_id: int | None = None
    next_id: int | None = None
    next_unreviewed_id: int | None = None
    edits: list[dict] = field(default_factory=list)
    measured: ClipMeasure | None = None  # set when the cache lacked this clip
    audio_problem: str = ""  # "" when the audio decodes; else the code audio/peaks answer 422 with


def _problem(*, blob_null: bool, meta_problem: str, transcript, ts) -> tuple[str, str]:
    """The one problem a row shows, most serious first (audio before text before date)."""
    if blob_null:
        return "null_blob", PROBLEM_TEXT["null_blob"]
    if meta_problem:
        return meta_problem, PROBLEM_TEXT.get(meta_problem, meta_problem)
    if transcript is None:
        return "null_transcript", PROBLEM_TEXT["null_transcript"]
    if not str(transcript).strip():
        return "empty_transcript", PROBLEM_TEXT["empty_transcript"]
    if ts.problem:
        return ts.problem, ts.detail
    return "", ""


def _text(value) -> str | None:
    """A transcript as text, whatever type the live app stored it with."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def clip_rows(ids: list[int]) -> list[ClipRow]:
    """Rows for these ids, in this order, from three indexed look-ups and no blob reads."""
    if not ids:
        return []
    marks = _placeholders(len(ids))
    with _cursor() as cur:
        base = {
            r[0]: r for r in cur.execute(
                f"SELECT id, transcript, typeof(audio_blob) = 'null' FROM {CLIP_TABLE} WHERE id IN ({marks})", ids
            ).fetchall()
        }
        flags = {
            r[0]: r for r in cur.execute(
                f"SELECT id, is_reviewed, is_trained, +timestamp FROM {CLIP_TABLE} INDEXED BY {ROW_INDEX} WHERE id IN ({marks})",
                ids,
            ).fetchall()
        }
        meta = {
            r[0]: r for r in cur.execute(
                f"SELECT clip_id, original_transcript, version, duration_s, problem FROM {META_TABLE} WHERE clip_id IN ({marks})",
                ids,
            ).fetchall()
        }
    rows = []
    for clip_id in ids:
        if clip_id not in base:
            continue  # deleted between the id query and now
        _, transcript, blob_null = base[clip_id]
        transcript = _text(transcript)
        _, is_reviewed, is_trained, raw_ts = flags.get(clip_id, (clip_id, 0, 0, None))
        ts = parse_timestamp(raw_ts)
        _, original, version, duration, meta_problem = meta.get(clip_id, (clip_id, None, 1, None, ""))
        problem, detail = _problem(blob_null=bool(blob_null), meta_problem=meta_problem or "", transcript=transcript, ts=ts)
        rows.append(ClipRow(
            id=clip_id, transcript=transcript, original_transcript=_text(original) if original is not None else transcript,
            is_reviewed=bool(is_reviewed), is_trained=bool(is_trained), timestamp=ts.iso,
            timestamp_raw=raw_ts if raw_ts is None or isinstance(raw_ts, int | float | str) else _text(raw_ts),
            duration_s=duration, problem=problem, problem_detail=detail, version=version or 1,
        ))
    return rows


class ClipListing:
    """A lazy, sliceable list of ClipRow for one filter: Django's Paginator counts and slices it."""

    ordered = True

    def __init__(self, filters: ClipFilters):
        self.query = ClipQuery(filters)
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            sql, params = self.query.count_sql()
            with _cursor() as cur:
                self._count = cur.execute(sql, params).fetchone()[0]
        return self._count

    __len__ = count

    def ids(self, limit: int | None = None, offset: int = 0) -> list[int]:
        sql, params = self.query.ids_sql(limit, offset)
        with _cursor() as cur:
            return [r[0] for r in cur.execute(sql, params).fetchall()]

    def __getitem__(self, item):
        if not isinstance(item, slice):
            rows = self[item:item + 1]
            if not rows:
                raise IndexError(item)
            return rows[0]
        start = item.start or 0
        limit = None if item.stop is None else max(0, item.stop - start)
        return clip_rows(self.ids(limit, start))


def clip_list(filters: ClipFilters | None = None) -> ClipListing:
    return ClipListing(filters or ClipFilters())


def clip_ids(filters: ClipFilters | None = None) -> list[int]:
    """Every id matching a filter, in its order (export, bulk work)."""
    return ClipListing(filters or ClipFilters()).ids()


def clip_measure(blob, *, blob_length: int | None = None) -> ClipMeasure:
    """Decode a blob and measure it; a bad blob gives a ClipMeasure with a problem, never raises."""
    length = len(blob) if blob is not None else blob_length
    try:
        pcm = decode_pcm(blob, max_seconds=settings.S2S_MAX_CLIP_SECONDS)
    except ClipDecodeError as e:
        return ClipMeasure(blob_length=length, problem=e.code, problem_detail=str(e))
    m = measure(pcm.astype("float32") / 32768.0)
    metrics = {k: round(float(getattr(m, k)), 4) for k in METRIC_FIELDS}
    return ClipMeasure(blob_length=length, duration_s=round(m.duration_s, 4), metrics=metrics)


def clip_blob(clip_id: int):
    """(blob, version) for audio and peaks; ClipNotFound when the row is gone."""
    with _cursor() as cur:
        row = cur.execute(f"SELECT audio_blob FROM {CLIP_TABLE} WHERE id = %s", [clip_id]).fetchone()
        if row is None:
            raise ClipNotFound(clip_id)
        version = cur.execute(f"SELECT version FROM {META_TABLE} WHERE clip_id = %s", [clip_id]).fetchone()
    return row[0], (version[0] if version else 1)


def clip_audio_tag(clip_id: int) -> tuple[int, int | None]:
    """(version, blob length) without reading the blob: enough for an ETag and a 304."""
    with _cursor() as cur:
        row = cur.execute(f"SELECT length(audio_blob) FROM {CLIP_TABLE} WHERE id = %s", [clip_id]).fetchone()
        if row is None:
            raise ClipNotFound(clip_id)
        version = cur.execute(f"SELECT version FROM {META_TABLE} WHERE clip_id = %s", [clip_id]).fetchone()
    return (version[0] if version else 1), row[0]


def clip_neighbours(clip_id: int, raw_timestamp, filters: ClipFilters) -> tuple[int | None, int | None, int | None]:
    """prev, next and next unreviewed (wrapping to the start) in the filter's order."""
    query = ClipQuery(filters)
    unreviewed = ClipQuery(filters.but(reviewed=False))
    out = []
    with _cursor() as cur:
        for q, forward in ((query, False), (query, True), (unreviewed, True)):
            if q is unreviewed and filters.reviewed is False:
                out.append(out[1])  # same filter: the next one is the next unreviewed one
                continue
            found = None
            for sql, params in q.neighbour_sql(clip_id, raw_timestamp, forward=forward):
                row = cur.execute(sql, params).fetchone()
                if row:
                    found = row[0]
                    break
            out.append(found)
        if out[2] is None:
            sql, params = unreviewed.ids_sql(limit=2)
            first = [r[0] for r in cur.execute(sql, params).fetchall() if r[0] != clip_id]
            out[2] = first[0] if first else None
    return out[0], out[1], out[2]


def clip_edits(clip_id: int, limit: int = 20) -> list[dict]:
    return list(
        ClipEdit.objects.using(DB).filter(clip_id=clip_id).order_by("-id")
        .values("username", "field", "old_value", "new_value", "created_at")[:limit]
    )


def clip_get(clip_id: int, filters: ClipFilters | None = None, *, neighbours: bool = True) -> ClipDetail:
    """Everything the review page shows for one clip. Decodes the blob only when ClipMeta lacks it."""
    filters = filters or ClipFilters()
    with _cursor() as cur:
        row = cur.execute(
            f"SELECT id, transcript, is_reviewed, is_trained, +timestamp, typeof(audio_blob) = 'null', length(audio_blob)"
            f" FROM {CLIP_TABLE} WHERE id = %s", [clip_id],
        ).fetchone()
        if row is None:
            raise ClipNotFound(clip_id)
        meta = cur.execute(
            f"SELECT original_transcript, version, duration_s, problem, blob_length, {', '.join(METRIC_FIELDS)}"
            f" FROM {META_TABLE} WHERE clip_id = %s", [clip_id],
        ).fetchone()
    _, transcript, is_reviewed, is_trained, raw_ts, blob_null, blob_length = row
    transcript = _text(transcript)
    original, version, duration, meta_problem, cached_length, *metric_values = meta or (None, 1, None, "", None, *[None] * 5)
    measured = None
    if meta is None or cached_length != blob_length or (duration is None and not meta_problem):
        measured = clip_measure(clip_blob(clip_id)[0], blob_length=blob_length)
        duration, meta_problem = measured.duration_s, measured.problem
        metric_values = [(measured.metrics or {}).get(k) for k in METRIC_FIELDS]
    metrics = dict(zip(METRIC_FIELDS, metric_values, strict=True)) if duration is not None and metric_values[0] is not None else None
    ts = parse_timestamp(raw_ts)
    problem, detail = _problem(blob_null=bool(blob_null), meta_problem=meta_problem or "", transcript=transcript, ts=ts)
    if measured is not None and measured.problem_detail and problem == measured.problem:
        detail = measured.problem_detail
    findings = clip_findings(AudioMetrics(duration_s=duration, **metrics) if metrics else None, transcript, duration)
    warnings = [f.message for f in findings]
    if ts.problem:
        warnings.append(ts.detail)
    detail_row = ClipDetail(
        id=clip_id, transcript=transcript, original_transcript=_text(original) if original is not None else transcript,
        is_reviewed=bool(is_reviewed), is_trained=bool(is_trained), timestamp=ts.iso,
        timestamp_raw=raw_ts if raw_ts is None or isinstance(raw_ts, int | float | str) else _text(raw_ts),
        duration_s=duration, problem=problem, problem_detail=detail, version=version or 1,
        metrics=metrics, warnings=warnings, checks=[f.as_dict() for f in findings], blob_length=blob_length,
        measured=measured, suggestion=clip_suggestion(clip_id),
        audio_problem="null_blob" if blob_null else (meta_problem or ""),
        edits=clip_edits(clip_id),
    )
    if neighbours:
        detail_row.prev_id, detail_row.next_id, detail_row.next_unreviewed_id = clip_neighbours(clip_id, raw_ts, filters)
    return detail_row


def clips_lacking_meta(limit: int) -> list[int]:
    """Ids whose duration and metrics are not cached yet (never decoded, or decoded before a change)."""
    with _cursor() as cur:
        return [r[0] for r in cur.execute(
            f"SELECT id FROM {CLIP_TABLE} INDEXED BY {ROW_INDEX} WHERE id NOT IN"
            f" (SELECT clip_id FROM {META_TABLE} WHERE duration_s IS NOT NULL OR problem != '') ORDER BY id LIMIT %s",
            [limit],
        ).fetchall()]


def clip_blobs(ids: list[int]) -> dict[int, object]:
    """Blobs for a small batch of ids (export, scanning); callers keep batches small."""
    if not ids:
        return {}
    with _cursor() as cur:
        return dict(cur.execute(
            f"SELECT id, audio_blob FROM {CLIP_TABLE} WHERE id IN ({_placeholders(len(ids))})", ids
        ).fetchall())


def iter_export(filters: ClipFilters, batch: int = 20) -> Iterator[tuple[ClipRow, object]]:
    """(row, blob) for every clip in the filter, reading blobs a small batch at a time."""
    yield from iter_export_ids(clip_ids(filters), batch)


def iter_export_ids(ids: list[int], batch: int = 20) -> Iterator[tuple[ClipRow, object]]:
    """(row, blob) for these ids in this order (admin selections), a small batch of blobs at a time."""
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        blobs = clip_blobs(chunk)
        for row in clip_rows(chunk):
            yield row, blobs.get(row.id)


def export_clips(ids: list[int]) -> Iterator[ExportClip]:
    """What `review.export` writes, for these clips: rows as stored plus their blobs."""
    for row, blob in iter_export_ids(ids):
        raw = row.timestamp_raw
        yield ExportClip(
            id=row.id, transcript=row.transcript, original_transcript=row.original_transcript,
            is_reviewed=row.is_reviewed, is_trained=row.is_trained,
            timestamp=raw if raw is None or isinstance(raw, str) else str(raw), blob=blob,
        )


def clip_transcripts(ids: list[int], chunk: int = 500) -> list[tuple[int, str | None, int]]:
    """(id, transcript, version) for these ids, in this order; no blob reads (bulk rewrites)."""
    out: dict[int, tuple[int, str | None, int]] = {}
    with _cursor() as cur:
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            marks = _placeholders(len(part))
            versions = dict(cur.execute(
                f"SELECT clip_id, version FROM {META_TABLE} WHERE clip_id IN ({marks})", part).fetchall())
            for clip_id, transcript in cur.execute(
                f"SELECT id, transcript FROM {CLIP_TABLE} WHERE id IN ({marks})", part
            ).fetchall():
                out[clip_id] = (clip_id, _text(transcript), versions.get(clip_id) or 1)
    return [out[i] for i in ids if i in out]


def clip_version(clip_id: int) -> int:
    """The clip's current version (its ETag); 1 before its first change."""
    with _cursor() as cur:
        row = cur.execute(f"SELECT version FROM {META_TABLE} WHERE clip_id = %s", [clip_id]).fetchone()
    return row[0] if row else 1


def clip_flag_counts(ids: list[int], chunk: int = 500) -> dict[str, int]:
    """How many of these clips exist, are reviewed, are trained (confirmation pages), from the row index."""
    counts = {"clips": 0, "reviewed": 0, "trained": 0}
    with _cursor() as cur:
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            n, r, t = cur.execute(
                f"SELECT COUNT(*), COALESCE(SUM(COALESCE(is_reviewed, 0) != 0), 0), COALESCE(SUM(COALESCE(is_trained, 0) != 0), 0)"
                f" FROM {CLIP_TABLE} INDEXED BY {ROW_INDEX} WHERE id IN ({_placeholders(len(part))})", part,
            ).fetchone()
            counts["clips"] += n
            counts["reviewed"] += r
            counts["trained"] += t
    return counts


def trash_list():
    # `timestamp` is deferred: the DATETIME converter would choke on a bad stored value.
    return TrashedClip.objects.using(DB).defer("audio_blob", "timestamp").order_by("-id")


def _local_midnight() -> datetime:
    now = timezone.localtime()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _sessions(rows: list[tuple[str, datetime, float]]) -> dict:
    """Group saves into review sessions: one reviewer, no pause longer than SESSION_GAP."""
    sessions = []
    for username, created, seconds in sorted(rows, key=lambda r: (r[0], r[1])):
        last = sessions[-1] if sessions else None
        if last and last["username"] == username and created - last["ended_at"] <= SESSION_GAP:
            last["ended_at"], last["entries"], last["seconds"] = created, last["entries"] + 1, last["seconds"] + seconds
        else:
            sessions.append({"username": username, "started_at": created, "ended_at": created, "entries": 1, "seconds": seconds})
    if not sessions:
        return {"count": 0, "avg_entries": 0.0, "avg_seconds": 0.0, "last": None}
    last = max(sessions, key=lambda s: s["ended_at"])
    return {
        "count": len(sessions),
        "avg_entries": round(sum(s["entries"] for s in sessions) / len(sessions), 2),
        "avg_seconds": round(sum(s["seconds"] for s in sessions) / len(sessions), 1),
        "last": {**last, "seconds": round(last["seconds"], 1)},
    }


def review_stats(days: int = 30) -> dict:
    """Progress numbers: two index-only passes over the clips plus the small side tables."""
    with _cursor() as cur:
        total, reviewed, trained, reviewed_untrained, seconds, reviewed_seconds, scanned = cur.execute(
            "SELECT COUNT(*), COALESCE(SUM(c.r), 0), COALESCE(SUM(c.t), 0), COALESCE(SUM(c.r AND NOT c.t), 0),"
            " SUM(m.duration_s), SUM(CASE WHEN c.r THEN m.duration_s END),"
            " COUNT(CASE WHEN m.duration_s IS NOT NULL OR m.problem != '' THEN 1 END)"
            f" FROM (SELECT id, COALESCE(is_reviewed, 0) != 0 AS r, COALESCE(is_trained, 0) != 0 AS t"
            f" FROM {CLIP_TABLE} INDEXED BY {FLAGS_INDEX}) AS c LEFT JOIN {META_TABLE} AS m ON m.clip_id = c.id"
        ).fetchone()
        avg_review = cur.execute(
            "SELECT AVG(total) FROM (SELECT SUM(seconds) AS total FROM s2s_review_session GROUP BY clip_id)"
        ).fetchone()[0]
    since = _local_midnight() - timedelta(days=days - 1)
    reviewed_at = list(
        ClipMeta.objects.using(DB).filter(reviewed_at__gte=since).values_list("reviewed_at", flat=True)
    )
    per_day: dict[str, int] = {}
    for moment in reviewed_at:
        day = timezone.localtime(moment).date().isoformat()
        per_day[day] = per_day.get(day, 0) + 1
    today = _local_midnight().date().isoformat()
    sessions = list(
        ReviewSession.objects.using(DB).filter(created_at__gte=since).values_list("username", "created_at", "seconds")
    )
    return {
        "total": total,
        "reviewed": reviewed,
        "unreviewed": total - reviewed,
        "trained": trained,
        "reviewed_untrained": reviewed_untrained,
        "hours": round((seconds or 0) / 3600, 4),
        "reviewed_hours": round((reviewed_seconds or 0) / 3600, 4),
        "avg_review_seconds": round(avg_review, 1) if avg_review is not None else None,
        "reviewed_today": per_day.get(today, 0),
        "per_day": [{"date": d, "count": n} for d, n in sorted(per_day.items())],
        "per_session": _sessions(sessions),
        "scanned": scanned,
        "unscanned": total - scanned,
    }
