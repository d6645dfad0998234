from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from review.timestamps import date_bounds, parse_timestamp


@pytest.mark.parametrize("raw, expected", [
    ("2025-10-04 14:23:15", datetime(2025, 10, 4, 14, 23, 15, tzinfo=UTC)),  # CURRENT_TIMESTAMP
    ("2025-10-04T14:23:15", datetime(2025, 10, 4, 14, 23, 15, tzinfo=UTC)),
    ("2025-10-04T14:23:15Z", datetime(2025, 10, 4, 14, 23, 15, tzinfo=UTC)),
    ("2025-10-04 14:23:15.123456", datetime(2025, 10, 4, 14, 23, 15, 123456, tzinfo=UTC)),
    ("2025-10-04T14:23:15.5+02:00", datetime(2025, 10, 4, 12, 23, 15, 500000, tzinfo=UTC)),
    ("2025-10-04 14:23", datetime(2025, 10, 4, 14, 23, tzinfo=UTC)),
    ("2025-10-04", datetime(2025, 10, 4, tzinfo=UTC)),
    (b"2025-10-04 14:23:15", datetime(2025, 10, 4, 14, 23, 15, tzinfo=UTC)),
])
def test_it_reads_every_timestamp_form_the_live_app_may_write(raw, expected):
    parsed = parse_timestamp(raw)
    assert parsed.problem == ""
    assert parsed.value == expected


def test_it_answers_iso_utc_with_z():
    assert parse_timestamp("2025-10-04T16:23:15+02:00").iso == "2025-10-04T14:23:15Z"


@pytest.mark.parametrize("raw, code", [
    (None, "null_timestamp"),
    ("", "bad_timestamp"),
    ("yesterday", "bad_timestamp"),
    ("2025-13-45 10:00:00", "bad_timestamp"),
    ("2025-10-04 25:61:00", "bad_timestamp"),
    ("2025-10-04T10:00:00+99:00", "bad_timestamp"),
    (1728052995, "bad_timestamp"),
    (b"\xff\xfe", "bad_timestamp"),
    ("x" * 500, "bad_timestamp"),
])
def test_it_never_raises_on_garbage_and_names_the_problem(raw, code):
    parsed = parse_timestamp(raw)
    assert parsed.value is None and parsed.iso is None
    assert parsed.problem == code
    assert parsed.detail and len(parsed.detail) < 120


def test_offsets_keep_their_instant():
    parsed = parse_timestamp("2025-10-04T10:00:00-05:30")
    assert parsed.value.utcoffset() == timezone(timedelta(hours=-5, minutes=-30)).utcoffset(None)
    assert parsed.iso == "2025-10-04T15:30:00Z"


def test_date_bounds_cover_whole_days_for_text_comparison():
    lo, hi = date_bounds(date(2025, 10, 4), date(2025, 10, 5))
    assert (lo, hi) == ("2025-10-04", "2025-10-06")
    inside = ["2025-10-04 00:00:00", "2025-10-05T23:59:59Z", "2025-10-05 23:59:59.999"]
    outside = ["2025-10-03 23:59:59", "2025-10-06 00:00:00", "2025-10-06T00:00:00Z"]
    assert all(lo <= s < hi for s in inside)
    assert not any(lo <= s < hi for s in outside)
    assert date_bounds(None, None) == (None, None)
