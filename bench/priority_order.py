"""Cost of the review queue's `ordering=priority` against plain id order, on 20,000 clips.

    .venv/bin/python bench/priority_order.py [--clips 20000]

Priority order has no index (the score lives in a side table and changes with every save), so
SQLite sorts the candidates for each page and each prev/next. This measures that sort with the
same SQL the API runs (`review.filters.ClipQuery`), on a capture file in the live app's schema
with every clip scored. Blobs are small here: the queries read covering indexes only, never rows.
"""
from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from review.filters import ClipFilters, ClipQuery  # noqa: E402
from review.schema import create_seed_database, prepare_database  # noqa: E402


def timed(conn, sql, params, repeat=30) -> float:
    sql = sql.replace("%s", "?")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        conn.execute(sql, params).fetchall()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s2s.db"
        create_seed_database(path)
        conn = sqlite3.connect(path)
        prepare_database(conn)
        rng = random.Random(0)
        conn.executemany("INSERT INTO s2s_training_data (transcript, audio_blob, is_reviewed) VALUES (?, ?, ?)",
                         [(f"clip {i}", b"x" * 64, int(rng.random() < 0.3)) for i in range(args.clips)])
        conn.executemany("INSERT INTO s2s_review_quality (clip_id, version, codes, priority) VALUES (?, 1, '', ?)",
                         [(i, round(rng.expovariate(1.0), 3)) for i in range(1, args.clips + 1)])
        conn.commit()
        conn.execute("ANALYZE")
        middle = args.clips // 2
        print(f"{args.clips} clips, every one scored; median of 30 runs, ms")
        print("| query | id order | priority order |\n|---|---:|---:|")
        for label, filters in (("all clips", ClipFilters()), ("unreviewed", ClipFilters(reviewed=False))):
            row = []
            for ordering in ("id", "priority"):
                q = ClipQuery(filters.but(ordering=ordering))
                count_sql, count_params = q.count_sql()
                page_sql, page_params = q.ids_sql(50, 0)
                nb = q.neighbour_sql(middle, None, forward=True)
                row.append((timed(conn, count_sql, count_params) + timed(conn, page_sql, page_params),
                            sum(timed(conn, s, p) for s, p in nb)))
            print(f"| {label}: count + first page of 50 | {row[0][0]:.1f} | {row[1][0]:.1f} |")
            print(f"| {label}: next clip | {row[0][1]:.2f} | {row[1][1]:.2f} |")
        conn.close()


if __name__ == "__main__":
    main()
