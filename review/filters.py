"""Clip filters: parsed once from query parameters, then turned into SQL that never walks blobs.

Why raw SQL here: in `s2s_training_data` the audio blob sits before `is_reviewed`,
`is_trained` and `timestamp`, so reading any of those from the row makes SQLite follow the
blob's whole overflow-page chain (tens of pages per clip), and even a plain table scan reads
a near-full page per row. Every condition is therefore answered from a covering index made by
`review.schema`, and `INDEXED BY` pins each plan so SQLite never falls back to the table:
`_idx_row` (id, is_reviewed, is_trained, timestamp) for id order, flags and dates;
`_idx_timestamp` (timestamp, id) for time order; `_idx_transcript` for text search;
`_idx_null_blob` (partial) for missing audio; `_idx_flags` for counts by flag.

One index "drives" each query and gives its order. Conditions it cannot answer are checked
with one correlated seek into `_idx_row` per candidate, or (text, problems) probed in a list
built once per statement. Measured on 20,000 clips (3.8 GB), in-process, 2 busy cores:
count + page of ids about 0.3 ms unfiltered or with flag/date filters, prev/next about 0.1 ms,
a text search 3-20 ms (a common word matches most rows).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date

from rest_framework import serializers

from .quality import CHECKS
from .timestamps import SQL_TIMESTAMP_GLOB, date_bounds

CLIP_TABLE = "s2s_training_data"
META_TABLE = "s2s_review_clipmeta"
FLAGS_INDEX = "s2s_review_idx_flags"
TIMESTAMP_INDEX = "s2s_review_idx_timestamp"
ROW_INDEX = "s2s_review_idx_row"
TRANSCRIPT_INDEX = "s2s_review_idx_transcript"
NULL_BLOB_INDEX = "s2s_review_idx_null_blob"
ORDERINGS = ("id", "-id", "timestamp", "-timestamp", "priority")
QUALITY_TABLE = "s2s_review_quality"
CHECK_TABLE = "s2s_review_check"
# Review-queue order (active learning): the clips most likely wrong first, by the priority
# review.quality_services caches; clips without one count as 0. Negated so that ascending
# (key, id) is the queue's order and row-value comparisons find neighbours. Unlike the other
# orders no index gives it, so SQLite sorts the candidates (a few ms on 20,000 clips).
PRIORITY_KEY = (f"-COALESCE((SELECT q.priority FROM {QUALITY_TABLE} AS q WHERE q.clip_id = {CLIP_TABLE}.id), 0)")
PRIORITY_OF = f"-COALESCE((SELECT q.priority FROM {QUALITY_TABLE} AS q WHERE q.clip_id = %s), 0)"
ANY = ("any",)  # a condition every index can answer (id ranges, self-contained sub-queries)
MAX_PAGE_SIZE = 500

# Where columns can be read without the table row (whose cells are large and whose flags sit
# behind the blob): each covering index, named by what it holds. `id` is in all of them.
_SOURCES = {
    "row": f"{CLIP_TABLE} INDEXED BY {ROW_INDEX}",
    "flags": f"{CLIP_TABLE} INDEXED BY {FLAGS_INDEX}",
    "ts": f"{CLIP_TABLE} INDEXED BY {TIMESTAMP_INDEX}",
    "text": f"{CLIP_TABLE} INDEXED BY {TRANSCRIPT_INDEX}",
}

# A row with any of these has a problem the list can show without decoding audio. Audio that
# fails to decode is known once a clip was opened or scanned (ClipMeta.problem).
PROBLEM_SQL = (
    f"(id IN (SELECT id FROM {CLIP_TABLE} INDEXED BY {NULL_BLOB_INDEX} WHERE audio_blob IS NULL)"
    f" OR id IN (SELECT id FROM {_SOURCES['text']} WHERE transcript IS NULL OR trim(transcript) = '')"
    f" OR id IN (SELECT clip_id FROM {META_TABLE} WHERE problem != '')"
    f" OR id IN (SELECT id FROM {_SOURCES['ts']} WHERE timestamp IS NULL OR typeof(timestamp) != 'text'"
    f" OR timestamp NOT GLOB '{SQL_TIMESTAMP_GLOB}'))"
)

# Each problem code a row can show (review.selectors._problem) -> a self-contained condition.
# Decode failures are known once a clip was opened or scanned (ClipMeta.problem).
_META_PROBLEM = f"id IN (SELECT clip_id FROM {META_TABLE} WHERE problem = %s)"
PROBLEM_KINDS = {
    "null_blob": f"id IN (SELECT id FROM {CLIP_TABLE} INDEXED BY {NULL_BLOB_INDEX} WHERE audio_blob IS NULL)",
    **{code: _META_PROBLEM for code in ("empty_blob", "not_zlib", "truncated", "too_long", "no_samples", "odd_length")},
    "null_transcript": f"id IN (SELECT id FROM {_SOURCES['text']} WHERE transcript IS NULL)",
    "empty_transcript": f"id IN (SELECT id FROM {_SOURCES['text']} WHERE transcript IS NOT NULL AND trim(transcript) = '')",
    "null_timestamp": f"id IN (SELECT id FROM {_SOURCES['ts']} WHERE timestamp IS NULL)",
    "bad_timestamp": f"id IN (SELECT id FROM {_SOURCES['ts']} WHERE timestamp IS NOT NULL"
                     f" AND (typeof(timestamp) != 'text' OR timestamp NOT GLOB '{SQL_TIMESTAMP_GLOB}'))",
}


@dataclass(frozen=True)
class ClipFilters:
    """What the reviewer asked to see; shared by the list, prev/next and the export."""

    reviewed: bool | None = None
    trained: bool | None = None
    date_from: date | None = None
    date_to: date | None = None
    id_min: int | None = None
    id_max: int | None = None
    q: str = ""
    has_problem: bool | None = None
    problem: str = ""  # one problem code (PROBLEM_KINDS), e.g. "null_blob"; "" for any row
    check: str = ""  # one quality-check code (review.quality.CHECKS); "" for any row
    ordering: str = "id"

    def but(self, **changes) -> ClipFilters:
        return replace(self, **changes)

    @property
    def by_timestamp(self) -> bool:
        return self.ordering.lstrip("-") == "timestamp"

    @property
    def by_priority(self) -> bool:
        return self.ordering == "priority"

    @property
    def descending(self) -> bool:
        return self.ordering.startswith("-")


FILTER_KEYS = ("reviewed", "trained", "date_from", "date_to", "id_min", "id_max", "q", "has_problem", "check", "ordering")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_QUERY_CHARS = 200


def parse_filters(query_params) -> ClipFilters:
    """Query parameters -> ClipFilters, or a 400 `{field: [msg]}`. Blank values mean "not set".

    Hand-written rather than a DRF serializer: it runs on every list and detail request, and
    building a serializer costs more than the SQL it feeds.
    """
    errors: dict[str, list[str]] = {}
    raw = {k: query_params.get(k, "").strip() for k in FILTER_KEYS}

    def flag(name):
        value = raw[name]
        if value in ("0", "1"):
            return value == "1"
        if value:
            errors[name] = [f"{value!r} is not allowed here: use 0 or 1."]
        return None

    def day(name):
        value = raw[name]
        if not value:
            return None
        try:
            if _DAY_RE.match(value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        errors[name] = [f"{value!r} is not a date: use YYYY-MM-DD."]
        return None

    def whole(name):
        value = raw[name]
        if not value:
            return None
        if value.isdigit() and len(value) < 19:
            return int(value)
        errors[name] = [f"{value!r} is not an id (a whole number, 0 or more)."]
        return None

    filters = ClipFilters(
        reviewed=flag("reviewed"), trained=flag("trained"), date_from=day("date_from"), date_to=day("date_to"),
        id_min=whole("id_min"), id_max=whole("id_max"), q=raw["q"], has_problem=flag("has_problem"),
        check=raw["check"], ordering=raw["ordering"] or "id",
    )
    if filters.check and filters.check not in CHECKS:
        errors["check"] = [f"{filters.check[:40]!r} is not a quality check: use one of {', '.join(CHECKS)}."]
    if len(filters.q) > MAX_QUERY_CHARS:
        errors["q"] = [f"Search text is longer than {MAX_QUERY_CHARS} characters."]
    if filters.ordering not in ORDERINGS:
        errors["ordering"] = [f"{filters.ordering!r} is not an ordering: use one of {', '.join(ORDERINGS)}."]
    if errors:
        raise serializers.ValidationError(errors)
    return filters


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ClipQuery:
    """SQL for one filter: count, a page of ids, and the neighbours of a clip."""

    def __init__(self, filters: ClipFilters):
        self.f = filters
        if filters.by_timestamp:
            self.driver = "ts"
        elif filters.q:
            # The LIKE scan is cheap; a list of its matches is not (a common word matches most
            # rows): scan the transcript index in place, check the rest per match.
            self.driver = "text"
        else:
            self.driver = "row"  # id order, flags and dates all in one index

    # (sources, sql, params): the indexes that hold every column the condition reads.
    def _conditions(self) -> list[tuple[tuple[str, ...], str, list]]:
        f, out = self.f, []
        if f.reviewed is not None:
            out.append((("row", "flags"), "COALESCE(is_reviewed, 0) " + ("!= 0" if f.reviewed else "= 0"), []))
        if f.trained is not None:
            out.append((("row", "flags"), "COALESCE(is_trained, 0) " + ("!= 0" if f.trained else "= 0"), []))
        lo, hi = date_bounds(f.date_from, f.date_to)
        if lo is not None:
            out.append((("ts", "row"), "timestamp >= %s", [lo]))
        if hi is not None:
            out.append((("ts", "row"), "timestamp < %s", [hi]))
        if f.id_min is not None:
            out.append((ANY, "id >= %s", [f.id_min]))
        if f.id_max is not None:
            out.append((ANY, "id <= %s", [f.id_max]))
        if f.q:
            out.append((("text",), "transcript LIKE %s ESCAPE '\\'", [f"%{_like_escape(f.q)}%"]))
        if f.has_problem is not None:
            out.append((ANY, PROBLEM_SQL if f.has_problem else f"NOT {PROBLEM_SQL}", []))
        if f.problem:
            sql = PROBLEM_KINDS[f.problem]
            out.append((ANY, sql, [f.problem] if sql == _META_PROBLEM else []))
        if f.check:
            out.append((ANY, f"+id IN (SELECT clip_id FROM {CHECK_TABLE} WHERE code = %s)", [f.check]))
        return out

    def where(self, extra=()) -> tuple[str, list]:
        """WHERE for the driving index: its own conditions in place, the row index's conditions
        as one correlated seek per candidate, anything else as a list built once."""
        parts, params, seek, seek_params = [], [], [], []
        for sources, sql, p in [*self._conditions(), *extra]:
            if sources == ANY or self.driver in sources:
                parts.append(sql)
                params.extend(p)
            elif "row" in sources:
                seek.append(sql)
                seek_params.extend(p)
            else:
                # `+id`: probe the list while walking the driving index in order, rather than
                # letting SQLite seek each listed id and then sort them all.
                parts.append(f"+id IN (SELECT id FROM {_SOURCES[sources[0]]} WHERE {sql})")
                params.extend(p)
        if seek:
            # Bare column names inside resolve to the aliased row-index entry of the same id.
            parts.append(
                f"EXISTS (SELECT 1 FROM {CLIP_TABLE} AS r INDEXED BY {ROW_INDEX}"
                f" WHERE r.id = {CLIP_TABLE}.id AND {' AND '.join(seek)})"
            )
            params.extend(seek_params)
        return (" WHERE " + " AND ".join(parts)) if parts else "", params

    def order_by(self, reverse: bool = False) -> str:
        desc = self.f.descending != reverse
        d = " DESC" if desc else ""
        if self.f.by_timestamp:
            return f" ORDER BY timestamp{d}, id{d}"
        if self.f.by_priority:
            return f" ORDER BY {PRIORITY_KEY}{d}, id{d}"
        return f" ORDER BY id{d}"

    def count_sql(self) -> tuple[str, list]:
        where, params = self.where()
        return f"SELECT COUNT(*) FROM {_SOURCES[self.driver]}{where}", params

    def ids_subquery_sql(self) -> tuple[str, list]:
        """`SELECT id ... WHERE ...` with no order: for `id IN (...)` in an ORM queryset (admin)."""
        where, params = self.where()
        return f"SELECT id FROM {_SOURCES[self.driver]}{where}", params

    def ids_sql(self, limit: int | None = None, offset: int = 0) -> tuple[str, list]:
        where, params = self.where()
        sql = f"SELECT id FROM {_SOURCES[self.driver]}{where}{self.order_by()}"
        if limit is not None:
            sql += " LIMIT %s OFFSET %s"
            params = [*params, limit, offset]
        return sql, params

    def neighbour_sql(self, clip_id: int, raw_timestamp, *, forward: bool) -> list[tuple[str, list]]:
        """Statements to try in turn; the first id found is the clip after (forward) or before `clip_id`.

        Each is one index range walk that stops at its first row: row-value ranges on
        (timestamp, id), and NULL timestamps (which SQLite sorts first) in a statement of their own,
        because an OR of the two would make SQLite sort every candidate.
        """
        ascending = forward != self.f.descending  # walking up the sort key?
        if self.f.by_priority:
            conds = [(ANY, f"({PRIORITY_KEY}, id) {'>' if ascending else '<'} ({PRIORITY_OF}, %s)", [clip_id, clip_id])]
        elif not self.f.by_timestamp:
            conds = [(ANY, "id > %s" if ascending else "id < %s", [clip_id])]
        elif ascending:
            conds = ([(("ts",), "timestamp IS NULL AND id > %s", [clip_id]), (("ts",), "timestamp IS NOT NULL", [])]
                     if raw_timestamp is None else [(("ts",), "(timestamp, id) > (%s, %s)", [raw_timestamp, clip_id])])
        else:
            conds = ([(("ts",), "timestamp IS NULL AND id < %s", [clip_id])] if raw_timestamp is None
                     else [(("ts",), "(timestamp, id) < (%s, %s)", [raw_timestamp, clip_id]), (("ts",), "timestamp IS NULL", [])])
        out = []
        for cond in conds:
            where, params = self.where([cond])
            order = self.order_by(reverse=not forward)
            if "timestamp IS NULL" in cond[1]:  # all keys equal: order by id alone, or SQLite sorts
                order = order.replace("timestamp DESC, ", "").replace("timestamp, ", "")
            out.append((f"SELECT id FROM {_SOURCES[self.driver]}{where}{order} LIMIT 1", params))
        return out
