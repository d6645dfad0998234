"""Reads: filters become index-only SQL, lists slice lazily, stats add up."""
import itertools
from datetime import date

import pytest
from django.db import connections

from review.filters import ClipFilters, ClipQuery
from review.selectors import ClipNotFound, clip_get, clip_list, clip_rows, review_stats
from tests.conftest import S2S

pytestmark = S2S

FILTER_CASES = [
    ClipFilters(),
    ClipFilters(reviewed=False),
    ClipFilters(reviewed=True, trained=False, ordering="-id"),
    ClipFilters(date_from=date(2025, 10, 1), date_to=date(2025, 10, 2)),
    ClipFilters(q="fish", ordering="timestamp"),
    ClipFilters(q="fish", reviewed=False),
    ClipFilters(has_problem=True, ordering="-timestamp", id_min=2),
    ClipFilters(has_problem=False, trained=True, date_from=date(2025, 1, 1)),
]


def plans(sql, params):
    with connections["s2s"].cursor() as cur:
        rows = cur.execute("EXPLAIN QUERY PLAN " + sql.replace("%s", "?"), params).fetchall()
    return [r[3] for r in rows]


@pytest.mark.parametrize("filters", FILTER_CASES, ids=lambda f: repr(f)[12:70])
def test_no_filter_ever_scans_the_clip_table(insert_clip, filters):
    insert_clip("one fish", timestamp="2025-10-01 10:00:00")
    query = ClipQuery(filters)
    statements = [query.count_sql(), query.ids_sql(50, 100)]
    for ts, forward in itertools.product(["2025-10-01", None], [True, False]):
        statements += query.neighbour_sql(1, ts, forward=forward)
    for sql, params in statements:
        for step in plans(sql, params):
            # A SCAN of the table (not of an index) would read every row's big cell or blob chain.
            assert not (step.startswith("SCAN s2s_training_data") and "INDEX" not in step), (sql, step)
            assert "s2s_training_data" not in step or "INDEX" in step or "INTEGER PRIMARY KEY" in step, (sql, step)
    if filters.by_timestamp or query.driver == "row":  # the driving index gives the order
        for sql, params in statements[2:]:
            # prev/next stop at their first row: never a sort of every candidate
            assert not any("TEMP B-TREE" in step for step in plans(sql, params)), sql


def test_listing_counts_and_slices_lazily(insert_clip):
    ids = [insert_clip(f"c{i}", is_reviewed=i % 2) for i in range(7)]
    listing = clip_list(ClipFilters(reviewed=False, ordering="-id"))
    assert listing.count() == len(listing) == 4
    assert [r.id for r in listing[1:3]] == [ids[4], ids[2]]
    assert listing[0].id == ids[6]
    with pytest.raises(IndexError):
        listing[10]


def test_rows_keep_the_asked_order_and_skip_vanished_ids(insert_clip):
    a, b = insert_clip("a"), insert_clip("b")
    assert [r.id for r in clip_rows([b, 999, a])] == [b, a]
    assert clip_rows([]) == []


def test_get_of_a_missing_clip_raises(s2s_db):
    with pytest.raises(ClipNotFound):
        clip_get(1)


def test_stats_on_an_empty_database(s2s_db):
    stats = review_stats()
    assert stats["total"] == 0 and stats["hours"] == 0 and stats["avg_review_seconds"] is None
    assert stats["per_day"] == [] and stats["per_session"]["count"] == 0


def test_stats_count_only_measured_audio_and_say_how_many_are_left(insert_clip):
    a = insert_clip("a", seconds=1.0, is_reviewed=1)
    insert_clip("b", seconds=1.0)
    clip_get(a)  # measures, but only the API view caches: nothing cached yet
    stats = review_stats()
    assert (stats["scanned"], stats["unscanned"], stats["hours"]) == (0, 2, 0)
    from review.services import clipmeta_fill

    clipmeta_fill()
    stats = review_stats()
    assert (stats["scanned"], stats["unscanned"]) == (2, 0)
    assert stats["hours"] == pytest.approx(2 / 3600, abs=1e-4)
    assert stats["reviewed_hours"] == pytest.approx(1 / 3600, abs=1e-4)
