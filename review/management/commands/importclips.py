"""Import clips recorded elsewhere into a capture database, stored exactly as the live app stores them.

Sources, detected by shape:
- a folder of audio files (wav, flac, ogg, mp3) each beside a same-named `.txt` transcript;
- a JSONL manifest: NeMo's `{"audio_filepath", "text", "duration"}` or our older
  `{"audio", "transcript"}`, paths relative to the manifest;
- a CSV (`metadata.csv`: `file_name`, `text`, as Hugging Face's audiofolder reads it);
- a Hugging Face `datasets` directory (`save_to_disk`: `state.json` + Arrow shards) with an
  `audio` column holding the file bytes;
- a zip holding any of these (what `exportclips`, `GET /api/export` and the admin produce), or a
  folder holding one of the three exports.

Flags (`is_reviewed`, `is_trained`), the stored timestamp and the original transcript travel too,
so an export re-imports without losing anything. A clip whose samples already are in the
database (or earlier in the same import) is skipped as a duplicate: the key is the SHA-256 of
its int16 samples, so a re-encoded WAV of a stored clip still matches. Every clip is decoded and
validated before anything is written; a bad one is reported with its reason and skipped, never
half-written. Rows go in with short transactions and a busy timeout so the live app can keep
capturing into the same file meanwhile.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from review.audio import SAMPLE_RATE, encode_clip
from review.export import CSV_FILE, HF_STATE, MANIFEST
from review.schema import CLIP_TABLE, SIDE_TABLES
from review.speech import resample

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MAX_TRANSCRIPT_CHARS = 2000  # the API's limit for an edited transcript
BATCH_ROWS = 25  # rows per transaction: short enough that the live app never waits long
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
TRUE_WORDS = ("1", "true", "yes")


class ImportProblem(ValueError):
    """One source clip cannot be imported; the message says why, for the summary."""


@dataclass(frozen=True)
class SourceClip:
    """One clip to import, as found in the source (the transcript may still be invalid)."""

    label: str  # how the summary names it: a file name or "manifest line N"
    audio: Path | bytes | None  # a file, or the file's bytes (a datasets row)
    transcript: object
    is_reviewed: bool = False
    is_trained: bool = False
    timestamp: str | None = None
    original_transcript: str | None = None
    problem: str = ""  # set when the source entry itself is unusable
    loose_text: bool = False  # a .txt file: whitespace and line breaks are collapsed


@dataclass(frozen=True)
class PreparedClip:
    label: str
    blob: bytes
    transcript: str
    is_reviewed: bool
    is_trained: bool
    timestamp: str | None
    original_transcript: str | None
    duration_s: float
    audio_hash: str


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def _timestamp(value) -> str | None:
    return value if isinstance(value, str) and TIMESTAMP.match(value.strip()) else None


def _optional_text(value) -> str | None:
    return value if isinstance(value, str) and value != "" else None


# ---------------------------------------------------------------- reading sources

def clips_in_folder(folder: Path) -> Iterator[SourceClip]:
    """Audio files in `folder` (sorted, not recursive), each with its same-named .txt transcript."""
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        txt = path.with_suffix(".txt")
        if not txt.exists():
            yield SourceClip(path.name, path, None, problem=f"no transcript file {txt.name}")
            continue
        try:
            text = txt.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            yield SourceClip(path.name, path, None, problem=f"{txt.name} is not UTF-8 text")
            continue
        yield SourceClip(path.name, path, text, loose_text=True)


def _entry_clip(entry: dict, base: Path, label: str) -> SourceClip:
    """One manifest line or CSV row (NeMo, audiofolder or our older keys) -> SourceClip."""
    audio = next((entry[k] for k in ("audio_filepath", "file_name", "audio") if isinstance(entry.get(k), str) and entry[k]), None)
    text_key = next((k for k in ("text", "transcript") if k in entry), None)
    if audio is None or text_key is None:
        return SourceClip(label, None, None, problem='needs an audio path ("audio_filepath") and "text"')
    original = entry.get("original_text", entry.get("original_transcript"))
    return SourceClip(
        f"{label} ({audio})", base / audio, entry[text_key], is_reviewed=_flag(entry.get("is_reviewed", False)),
        is_trained=_flag(entry.get("is_trained", False)), timestamp=_timestamp(entry.get("timestamp")),
        original_transcript=_optional_text(original),
    )


def clips_in_manifest(manifest: Path) -> Iterator[SourceClip]:
    """Lines of a JSONL manifest; audio paths are relative to the manifest's folder."""
    with manifest.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            label = f"{manifest.name} line {n}"
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                yield SourceClip(label, None, None, problem=f"not JSON ({e.msg})")
                continue
            if not isinstance(entry, dict):
                yield SourceClip(label, None, None, problem="not a JSON object")
                continue
            yield _entry_clip(entry, manifest.parent, label)


def clips_in_csv(path: Path) -> Iterator[SourceClip]:
    """Rows of a CSV with a header (`file_name`, `text`, optional flags); paths relative to it."""
    with path.open(encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            yield _entry_clip(row, path.parent, f"{path.name} row {n}")


def _arrow_files(folder: Path) -> list[Path]:
    state = json.loads((folder / HF_STATE).read_text())
    return [folder / f["filename"] for f in state.get("_data_files", [])]


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise CommandError("Reading a datasets folder needs pyarrow: pip install 's2s-trainer[train]'.") from None
    return pyarrow


def hf_dataset_rows(folder: Path) -> int:
    """How many rows a `save_to_disk` folder holds (reads only the Arrow batch headers)."""
    pa = _pyarrow()

    total = 0
    for path in _arrow_files(folder):
        with pa.memory_map(str(path)) as source:
            for batch in pa.ipc.open_stream(source):
                total += batch.num_rows
    return total


def clips_in_hf_dataset(folder: Path) -> Iterator[SourceClip]:
    """Rows of a `datasets` folder: `audio` ({bytes, path}), `text` and our optional columns.

    Read with pyarrow, one record batch at a time: no audio decoding library is needed and a
    large data set never sits in memory whole.
    """
    pa = _pyarrow()
    n = 0
    for path in _arrow_files(folder):
        with pa.memory_map(str(path)) as source:
            for batch in pa.ipc.open_stream(source):
                for row in batch.to_pylist():
                    n += 1
                    label = f"{folder.name} row {n}"
                    audio = row.get("audio")
                    text = row.get("text", row.get("transcript", row.get("sentence")))
                    if not isinstance(audio, dict) or not audio.get("bytes"):
                        yield SourceClip(label, None, None, problem='no audio bytes in the "audio" column')
                        continue
                    yield SourceClip(
                        label, audio["bytes"], text, is_reviewed=_flag(row.get("is_reviewed", False)),
                        is_trained=_flag(row.get("is_trained", False)), timestamp=_timestamp(row.get("timestamp")),
                        original_transcript=_optional_text(row.get("original_text")),
                    )


def source_kind(folder: Path) -> str:
    """Which export a folder holds: hf, jsonl, csv, or a plain folder of audio + .txt files."""
    if (folder / HF_STATE).is_file():
        return "hf"
    if (folder / MANIFEST).is_file():
        return "jsonl"
    if (folder / CSV_FILE).is_file():
        return "csv"
    return "folder"


# ---------------------------------------------------------------- validating one clip

def clean_transcript(value: object, *, loose: bool = False) -> str:
    """The API's limits; a loose .txt file (it may span lines) has its whitespace collapsed first.

    Text from a manifest, CSV or data set is kept exactly as written: an export re-imports as is.
    """
    if not isinstance(value, str):
        raise ImportProblem("transcript is missing or not text")
    text = " ".join(value.split()) if loose else value
    if not text.strip():
        raise ImportProblem("transcript is empty")
    if len(text) > MAX_TRANSCRIPT_CHARS:
        raise ImportProblem(f"transcript is {len(text)} characters (limit {MAX_TRANSCRIPT_CHARS})")
    if CONTROL_CHARS.search(text):
        raise ImportProblem("transcript contains control characters")
    return text


def load_audio(audio: Path | bytes, *, max_seconds: float) -> np.ndarray:
    """Any readable audio file (a path or its bytes) -> float32 mono at 16 kHz, or ImportProblem saying why not."""
    import soundfile as sf

    if isinstance(audio, Path) and not audio.is_file():
        raise ImportProblem(f"audio file not found: {audio}")
    source = io.BytesIO(audio) if isinstance(audio, bytes) else str(audio)
    try:
        info = sf.info(source)
        if info.frames / max(info.samplerate, 1) > max_seconds:
            raise ImportProblem(f"audio is {info.frames / info.samplerate:.1f} s long (limit {max_seconds:g} s)")
        if isinstance(source, io.BytesIO):
            source.seek(0)
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except ImportProblem:
        raise
    except Exception as sf_error:
        # Old libsndfile builds cannot read MP3: only then let librosa (audioread) try.
        if not isinstance(audio, Path) or audio.suffix.lower() != ".mp3" or "MP3" in sf.available_formats():
            raise ImportProblem(f"cannot read audio ({sf_error})") from None
        try:
            import librosa

            data, rate = librosa.load(str(audio), sr=None, mono=False)
            data = np.atleast_2d(data).T
        except Exception:
            raise ImportProblem(f"cannot read audio ({sf_error})") from None
    if data.size == 0:
        raise ImportProblem("audio file has no samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise ImportProblem("audio contains NaN or infinite samples")
    samples = resample(mono, int(rate), SAMPLE_RATE)
    if len(samples) / SAMPLE_RATE > max_seconds:
        raise ImportProblem(f"audio is {len(samples) / SAMPLE_RATE:.1f} s long (limit {max_seconds:g} s)")
    if len(samples) < SAMPLE_RATE // 10:
        raise ImportProblem(f"audio is only {len(samples) / SAMPLE_RATE * 1000:.0f} ms long")
    return samples


def to_pcm(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1) -> int16, exactly as `encode_clip` stores it (a 16-bit WAV comes back unchanged)."""
    return np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")


def audio_hash(pcm: np.ndarray) -> str:
    """The duplicate key: SHA-256 of the int16 samples (not of a file or blob, which re-encoding changes)."""
    return hashlib.sha256(np.ascontiguousarray(pcm, dtype="<i2").tobytes()).hexdigest()


def prepare(clip: SourceClip, *, reviewed: bool, max_seconds: float) -> PreparedClip:
    if clip.problem:
        raise ImportProblem(clip.problem)
    transcript = clean_transcript(clip.transcript, loose=clip.loose_text)
    pcm = to_pcm(load_audio(clip.audio, max_seconds=max_seconds))
    original = clip.original_transcript if clip.original_transcript != transcript else None
    return PreparedClip(clip.label, encode_clip(pcm), transcript, reviewed or clip.is_reviewed, clip.is_trained,
                        clip.timestamp, original, len(pcm) / SAMPLE_RATE, audio_hash(pcm))


# ---------------------------------------------------------------- writing

def open_capture_database(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    if not path.is_file():
        raise CommandError(f"{path} does not exist (create one with `manage.py makedemodb {path}` or point --database at the live file)")
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (CLIP_TABLE,)).fetchone():
        conn.close()
        raise CommandError(f"{path} has no {CLIP_TABLE} table: not a capture database")
    return conn


def existing_audio_hashes(conn: sqlite3.Connection, *, batch: int = 200) -> dict[str, int]:
    """{audio hash: clip id} of every clip already stored.

    Hashes are cached in `s2s_review_audiohash` (keyed by clip id, checked against the blob's
    length); only clips without a valid cached hash have their blobs read, a batch at a time,
    and their hashes are written back in short transactions.
    """
    lengths = dict(conn.execute(f"SELECT id, length(audio_blob) FROM {CLIP_TABLE}"))
    cached = {clip_id: (length, sha) for clip_id, length, sha in
              conn.execute("SELECT clip_id, blob_length, sha256 FROM s2s_review_audiohash")}
    hashes = {sha: clip_id for clip_id, (length, sha) in sorted(cached.items(), reverse=True)
              if lengths.get(clip_id) == length}
    todo = [i for i, length in lengths.items() if length and cached.get(i, (None,))[0] != length]
    for start in tqdm(range(0, len(todo), batch), desc="hashing stored clips", unit="batch", disable=len(todo) < 1000):
        chunk = todo[start:start + batch]
        rows = conn.execute(
            f"SELECT id, audio_blob FROM {CLIP_TABLE} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
        ).fetchall()
        fresh = []
        for clip_id, blob in rows:
            try:
                pcm = zlib.decompress(blob)
            except (zlib.error, TypeError):
                continue  # no readable audio: nothing an import could duplicate
            if len(pcm) % 2 == 0:
                sha = hashlib.sha256(pcm).hexdigest()
                hashes[sha] = min(clip_id, hashes.get(sha, clip_id))
                fresh.append((clip_id, len(blob), sha))
        _save_hashes(conn, fresh)
    return hashes


def _save_hashes(conn: sqlite3.Connection, rows: list[tuple[int, int, str]]) -> None:
    if not rows:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT OR REPLACE INTO s2s_review_audiohash (clip_id, blob_length, sha256) VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def insert_batch(conn: sqlite3.Connection, batch: list[PreparedClip]) -> None:
    """One short write transaction; with no timestamp the row gets CURRENT_TIMESTAMP like a live capture.

    An original transcript (an export of an edited clip) goes to our side table, as the review
    page keeps it.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        for c in batch:
            cols, values = ["transcript", "audio_blob", "is_reviewed", "is_trained"], [
                c.transcript, c.blob, int(c.is_reviewed), int(c.is_trained)]
            if c.timestamp:
                cols.append("timestamp")
                values.append(c.timestamp)
            cur = conn.execute(f"INSERT INTO {CLIP_TABLE} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values)
            conn.execute("INSERT OR REPLACE INTO s2s_review_audiohash (clip_id, blob_length, sha256) VALUES (?, ?, ?)",
                         (cur.lastrowid, len(c.blob), c.audio_hash))
            if c.original_transcript is not None:
                conn.execute("INSERT INTO s2s_review_clipmeta (clip_id, original_transcript, version) VALUES (?, ?, 1)",
                             (cur.lastrowid, c.original_transcript))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class Command(BaseCommand):
    help = ("Import clips (a folder of audio + .txt, a JSONL manifest, a CSV, a datasets folder, or an export zip) "
            "into the clip database, skipping exact duplicates.")

    def add_arguments(self, parser):
        parser.add_argument("source", help="folder, .jsonl manifest, .csv, datasets folder, or an export .zip")
        parser.add_argument("--database", help="capture SQLite file (default: settings.S2S_DATABASE)")
        parser.add_argument("--reviewed", action="store_true", help="mark every imported clip as reviewed")

    def handle(self, *args, source, database, reviewed, **options):
        source_path = Path(source)
        if not source_path.exists():
            raise CommandError(f"{source_path} does not exist")
        db_path = Path(database or settings.S2S_DATABASE)
        conn = open_capture_database(db_path, settings.S2S_SQLITE_BUSY_TIMEOUT_MS)
        try:
            conn.executescript(SIDE_TABLES)  # IF NOT EXISTS: original transcripts and hashes have a place to go
            with tempfile.TemporaryDirectory(prefix="importclips-") as tmp:
                clips, total = self.source_clips(source_path, Path(tmp))
                known = existing_audio_hashes(conn)
                imported, skipped, seconds = self.import_all(conn, clips, total, known, reviewed=reviewed)
        finally:
            conn.close()

        for label, reason in skipped:
            self.stderr.write(f"skipped {label}: {reason}")
        duplicates = sum(1 for _, reason in skipped if reason.startswith("duplicate"))
        summary = (f"Imported {imported} clip(s) ({seconds / 60:.1f} min of audio) into {db_path}; "
                   f"skipped {len(skipped)} ({duplicates} duplicate(s))")
        if imported == 0 and len(skipped) > duplicates:
            raise CommandError(summary + " (nothing imported)")
        self.stdout.write(self.style.SUCCESS(summary) if not skipped else self.style.WARNING(summary))

    def source_clips(self, source: Path, tmp: Path) -> tuple[Iterator[SourceClip], int | None]:
        """The clips of a source, and how many there are (for the progress bar)."""
        if source.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(source) as zf:
                    zf.extractall(tmp)  # zipfile drops absolute paths and ".." parts
            except zipfile.BadZipFile as e:
                raise CommandError(f"{source} is not a zip file ({e})") from None
            found = sorted((p.parent for name in (HF_STATE, MANIFEST, CSV_FILE) for p in tmp.rglob(name)),
                           key=lambda p: len(p.parts))
            if not found:
                raise CommandError(f"{source} holds no {MANIFEST}, {CSV_FILE} or {HF_STATE}")
            source = found[0]
        if source.is_dir():
            kind = source_kind(source)
            if kind == "hf":
                return clips_in_hf_dataset(source), hf_dataset_rows(source)
            source = {"jsonl": source / MANIFEST, "csv": source / CSV_FILE}.get(kind, source)
        if source.is_dir():
            clips = list(clips_in_folder(source))
        elif source.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            clips = list(clips_in_manifest(source))
        elif source.suffix.lower() == ".csv":
            clips = list(clips_in_csv(source))
        else:
            raise CommandError(f"{source}: expected a folder, a .jsonl manifest, a .csv, a datasets folder or an export .zip")
        return iter(clips), len(clips)

    def import_all(self, conn, clips: Iterator[SourceClip], total: int | None, known: dict[str, int], *, reviewed: bool):
        max_seconds = float(settings.S2S_MAX_CLIP_SECONDS)
        imported, skipped, seconds, batch = 0, [], 0.0, []
        seen: dict[str, str] = {}
        for clip in tqdm(clips, total=total, desc="importing", unit="clip"):
            try:
                prepared = prepare(clip, reviewed=reviewed, max_seconds=max_seconds)
            except ImportProblem as e:
                skipped.append((clip.label, str(e)))
                continue
            if prepared.audio_hash in known:
                skipped.append((clip.label, f"duplicate: same audio as clip {known[prepared.audio_hash]} already in the database"))
                continue
            if prepared.audio_hash in seen:
                skipped.append((clip.label, f"duplicate: same audio as {seen[prepared.audio_hash]} in this import"))
                continue
            seen[prepared.audio_hash] = clip.label
            batch.append(prepared)
            if len(batch) >= BATCH_ROWS:
                imported, seconds = self.flush(conn, batch, imported, seconds)
        if batch:
            imported, seconds = self.flush(conn, batch, imported, seconds)
        return imported, skipped, seconds

    def flush(self, conn, batch: list[PreparedClip], imported: int, seconds: float):
        try:
            insert_batch(conn, batch)
        except sqlite3.OperationalError as e:
            raise CommandError(
                f"database write failed after {imported} imported clip(s) ({e}); those are committed, "
                f"the {len(batch)} in this batch are not: rerun with the remaining files"
            ) from e
        imported += len(batch)
        seconds += sum(c.duration_s for c in batch)
        batch.clear()
        return imported, seconds
