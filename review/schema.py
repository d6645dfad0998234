"""The live app's table (never altered) and our side tables beside it in the same SQLite file.

Django does not migrate the `s2s` database: the clip table belongs to the live app. Our
`s2s_review_*` tables and the flag indexes are created here with IF NOT EXISTS on every new
connection, which is idempotent and cheap, so a fresh capture database just works.
"""
import sqlite3

# Verbatim from the spec; used to create demo and test databases in the exact seed schema.
SEED_DDL = """CREATE TABLE s2s_training_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    transcript TEXT,
    audio_blob BLOB, -- Compressed audio data (zlib compressed int16)
    is_reviewed INTEGER DEFAULT 0, -- 0: not reviewed, 1: reviewed
    is_trained INTEGER DEFAULT 0,  -- 0: not used in training, 1: used in training
    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP
);
"""

CLIP_TABLE = "s2s_training_data"

# The blobs sit before is_reviewed in each row: without a covering index, reading the flags of
# many rows walks every blob's overflow pages.
CLIP_INDEXES = """
CREATE INDEX IF NOT EXISTS s2s_review_idx_flags ON s2s_training_data (is_reviewed, is_trained, id);
CREATE INDEX IF NOT EXISTS s2s_review_idx_timestamp ON s2s_training_data (timestamp, id);
-- Everything but text and audio, in id order: lists, flag/date filters and per-id look-ups
-- read this instead of rows (built once, walking each blob like the two above).
CREATE INDEX IF NOT EXISTS s2s_review_idx_row ON s2s_training_data (id, is_reviewed, is_trained, timestamp);
-- Cheap to build (no blob walk): transcript search and NULL-blob rows without a table scan.
CREATE INDEX IF NOT EXISTS s2s_review_idx_transcript ON s2s_training_data (transcript);
CREATE INDEX IF NOT EXISTS s2s_review_idx_null_blob ON s2s_training_data (id) WHERE audio_blob IS NULL;
"""

SIDE_TABLES = """
CREATE TABLE IF NOT EXISTS s2s_review_clipmeta (
    clip_id INTEGER PRIMARY KEY,
    original_transcript TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    duration_s REAL,
    blob_length INTEGER,
    rms_dbfs REAL,
    peak_dbfs REAL,
    clipping_ratio REAL,
    silence_ratio REAL,
    snr_db REAL,
    problem TEXT NOT NULL DEFAULT '',
    review_seconds REAL NOT NULL DEFAULT 0,
    reviewed_at DATETIME,
    reviewed_by TEXT NOT NULL DEFAULT '',
    updated_at DATETIME
);
CREATE INDEX IF NOT EXISTS s2s_review_clipmeta_problem ON s2s_review_clipmeta (problem);
CREATE TABLE IF NOT EXISTS s2s_review_edit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    clip_id INTEGER NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    field TEXT NOT NULL DEFAULT 'transcript',
    old_value TEXT,
    new_value TEXT,
    created_at DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS s2s_review_edit_clip ON s2s_review_edit (clip_id, id);
CREATE TABLE IF NOT EXISTS s2s_review_session (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    clip_id INTEGER NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    seconds REAL NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS s2s_review_session_created ON s2s_review_session (created_at);
CREATE TABLE IF NOT EXISTS s2s_review_trash (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    clip_id INTEGER NOT NULL,
    transcript TEXT,
    audio_blob BLOB,
    is_reviewed INTEGER,
    is_trained INTEGER,
    timestamp DATETIME,
    deleted_at DATETIME NOT NULL,
    deleted_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS s2s_review_trash_clip ON s2s_review_trash (clip_id);
-- importclips' duplicate check: SHA-256 of each clip's int16 samples, valid while the blob
-- keeps its length (hashing 20,000 stored clips again takes half a minute).
CREATE TABLE IF NOT EXISTS s2s_review_audiohash (
    clip_id INTEGER PRIMARY KEY,
    blob_length INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""

# Quality control (review.quality, review.confidence): the codes of the checks that fired and
# the review-queue priority per clip (`version` = ClipMeta.version they were computed at, so a
# later edit marks them stale), one row per fired check for `?check=<code>` filters, and the
# latest re-transcription of each clip by a model.
QUALITY_TABLES = """
CREATE TABLE IF NOT EXISTS s2s_review_quality (
    clip_id INTEGER PRIMARY KEY,
    version INTEGER NOT NULL DEFAULT 1,
    codes TEXT NOT NULL DEFAULT '',
    priority REAL NOT NULL DEFAULT 0,
    updated_at DATETIME
);
CREATE INDEX IF NOT EXISTS s2s_review_quality_priority ON s2s_review_quality (priority, clip_id);
CREATE TABLE IF NOT EXISTS s2s_review_check (
    code TEXT NOT NULL,
    clip_id INTEGER NOT NULL,
    PRIMARY KEY (code, clip_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS s2s_review_check_clip ON s2s_review_check (clip_id);
CREATE TABLE IF NOT EXISTS s2s_review_asr (
    clip_id INTEGER PRIMARY KEY,
    model_id TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    avg_logprob REAL,
    no_speech_prob REAL,
    min_word_prob REAL,
    words TEXT NOT NULL DEFAULT '[]',
    blob_length INTEGER,
    created_at DATETIME
);
"""

def prepare_database(conn) -> None:
    """Create side tables and indexes when the clip table exists (IF NOT EXISTS: idempotent)."""
    cur = conn.cursor()
    has_clips = cur.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (CLIP_TABLE,)
    ).fetchone()
    if not has_clips:
        return
    conn.executescript(CLIP_INDEXES + SIDE_TABLES + QUALITY_TABLES)


def create_seed_database(path) -> None:
    """Make a new SQLite file holding exactly the live app's table (the spec's DDL)."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SEED_DDL)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.commit()
    finally:
        conn.close()


def on_connection_created(sender, connection, **kwargs):
    if connection.alias != "s2s":
        return
    prepare_database(connection.connection)
