import sqlite3

from review.schema import SEED_DDL
from tests.conftest import S2S, SCHEMA_SQL


def test_seed_ddl_is_the_spec_ddl_verbatim():
    assert SEED_DDL.strip() == SCHEMA_SQL.strip()


@S2S
def test_first_connection_adds_side_tables_and_indexes_but_never_alters_clip_columns(s2s_db):
    from django.db import connections

    before = sqlite3.connect(s2s_db).execute("PRAGMA table_info(s2s_training_data)").fetchall()
    with connections["s2s"].cursor() as cur:
        cur.execute("SELECT name FROM sqlite_master WHERE name LIKE 's2s_review_%'")
        names = {r[0] for r in cur.fetchall()}
        mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
    after = sqlite3.connect(s2s_db).execute("PRAGMA table_info(s2s_training_data)").fetchall()
    assert before == after
    assert {"s2s_review_clipmeta", "s2s_review_edit", "s2s_review_session", "s2s_review_trash", "s2s_review_idx_flags"} <= names
    assert mode == "wal"
