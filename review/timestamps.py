"""Read the live app's `timestamp` column, which is TEXT in practice and may hold anything.

SQLite's CURRENT_TIMESTAMP writes `YYYY-MM-DD HH:MM:SS` in UTC; other writers use ISO 8601
with a `T`, a `Z`, an offset or fractional seconds; an old or broken row may hold NULL, a
number or garbage. A review page must never crash on one bad row, so `parse_timestamp` never
raises: it answers the datetime it could read (aware, UTC when no offset was written, as
CURRENT_TIMESTAMP is UTC) and a problem code plus a sentence for the row it could not.

Django-free on purpose: the training pipeline reads the same column.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

# Date, optional time (`T` or space), optional fraction, optional `Z` or `+HH:MM` offset.
_TIMESTAMP_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*$",
    re.IGNORECASE,
)

# A cheap SQL pattern a well-formed stored value matches; rows that do not are flagged as
# problems without parsing every row in Python (see review.filters).
SQL_TIMESTAMP_GLOB = "[12][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]*"


@dataclass(frozen=True)
class ParsedTimestamp:
    value: datetime | None
    problem: str = ""  # "" | "null_timestamp" | "bad_timestamp"
    detail: str = ""

    @property
    def iso(self) -> str | None:
        """ISO 8601 in UTC with a `Z`, the one form the API answers with."""
        if self.value is None:
            return None
        return self.value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(raw) -> ParsedTimestamp:
    """Stored value -> ParsedTimestamp; never raises, whatever the row holds."""
    if raw is None:
        return ParsedTimestamp(None, "null_timestamp", "timestamp is NULL")
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return ParsedTimestamp(None, "bad_timestamp", "timestamp is binary data, not text")
    if isinstance(raw, datetime):
        return ParsedTimestamp(raw if raw.tzinfo else raw.replace(tzinfo=UTC))
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return ParsedTimestamp(None, "bad_timestamp", f"timestamp is a number ({raw!r}), not a date")
    text = str(raw)
    m = _TIMESTAMP_RE.match(text)
    if not m:
        shown = text if len(text) <= 40 else text[:37] + "..."
        return ParsedTimestamp(None, "bad_timestamp", f"timestamp {shown!r} is not a date and time")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        tz = _zone(zone)
        value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo=tz)
    except ValueError as e:
        return ParsedTimestamp(None, "bad_timestamp", f"timestamp {text!r} is out of range ({e})")
    return ParsedTimestamp(value)


def _zone(zone: str | None):
    if not zone or zone.upper() == "Z":
        return UTC
    from datetime import timezone

    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {zone} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def date_bounds(date_from: date | None, date_to: date | None) -> tuple[str | None, str | None]:
    """Inclusive day range -> text bounds `lo <= timestamp < hi` for the raw column.

    Stored values start with `YYYY-MM-DD` whether they use a space or a `T`, so plain text
    comparison against day strings selects whole days and can seek the timestamp index.
    """
    lo = date_from.isoformat() if date_from else None
    hi = (date_to + timedelta(days=1)).isoformat() if date_to else None
    return lo, hi
