"""Import clips recorded elsewhere into a capture database, stored exactly as the live app stores them.

Sources: a folder of audio files (wav, flac, ogg, mp3) each beside a same-named `.txt`
transcript; a JSONL manifest (`{"audio": path relative to the manifest, "transcript": ...}` per
line); or the zip that `GET /api/export` produces (its `manifest.jsonl` is such a manifest, so an
export re-imports). Every clip is decoded and validated before anything is written; a bad file is
reported with its reason and skipped, never half-written. Rows go in with short transactions and a
busy timeout so the live app can keep capturing into the same file meanwhile.
"""
from __future__ import annotations

import json
import re
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from review.audio import SAMPLE_RATE, encode_clip
from review.schema import CLIP_TABLE
from review.speech import resample

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MAX_TRANSCRIPT_CHARS = 2000  # the API's limit for an edited transcript
BATCH_ROWS = 25  # rows per transaction: short enough that the live app never waits long
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


class ImportProblem(ValueError):
    """One source clip cannot be imported; the message says why, for the summary."""


@dataclass(frozen=True)
class SourceClip:
    """One clip to import, as found in the source (the transcript may still be invalid)."""

    label: str  # how the summary names it: a file name or "manifest line N"
    audio: Path | None
    transcript: object
    is_reviewed: bool = False
    timestamp: str | None = None
    problem: str = ""  # set when the source entry itself is unusable


@dataclass(frozen=True)
class PreparedClip:
    label: str
    blob: bytes
    transcript: str
    is_reviewed: bool
    timestamp: str | None
    duration_s: float


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
        yield SourceClip(path.name, path, text)


def clips_in_manifest(manifest: Path) -> Iterator[SourceClip]:
    """Lines of a JSONL manifest; audio paths are relative to the manifest's folder."""
    base = manifest.parent
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
            if not isinstance(entry, dict) or not isinstance(entry.get("audio"), str) or "transcript" not in entry:
                yield SourceClip(label, None, None, problem='needs "audio" (a path) and "transcript"')
                continue
            audio = base / entry["audio"]
            label = f"{label} ({entry['audio']})"
            stamp = entry.get("timestamp")
            yield SourceClip(
                label, audio, entry["transcript"], is_reviewed=bool(entry.get("is_reviewed", False)),
                timestamp=stamp if isinstance(stamp, str) and TIMESTAMP.match(stamp.strip()) else None,
            )


# ---------------------------------------------------------------- validating one clip

def clean_transcript(value: object) -> str:
    """Whitespace collapsed (a .txt may span lines), then the same limits the API enforces."""
    if not isinstance(value, str):
        raise ImportProblem("transcript is missing or not text")
    text = " ".join(value.split())
    if not text:
        raise ImportProblem("transcript is empty")
    if len(text) > MAX_TRANSCRIPT_CHARS:
        raise ImportProblem(f"transcript is {len(text)} characters (limit {MAX_TRANSCRIPT_CHARS})")
    if CONTROL_CHARS.search(text):
        raise ImportProblem("transcript contains control characters")
    return text


def load_audio(path: Path, *, max_seconds: float) -> np.ndarray:
    """Any readable audio file -> float32 mono at 16 kHz, or ImportProblem saying why not."""
    import soundfile as sf

    if not path.is_file():
        raise ImportProblem(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
        if info.frames / max(info.samplerate, 1) > max_seconds:
            raise ImportProblem(f"audio is {info.frames / info.samplerate:.1f} s long (limit {max_seconds:g} s)")
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except ImportProblem:
        raise
    except Exception as sf_error:
        # Old libsndfile builds cannot read MP3: only then let librosa (audioread) try.
        if path.suffix.lower() != ".mp3" or "MP3" in sf.available_formats():
            raise ImportProblem(f"cannot read audio ({sf_error})") from None
        try:
            import librosa

            data, rate = librosa.load(str(path), sr=None, mono=False)
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


def prepare(clip: SourceClip, *, reviewed: bool, max_seconds: float) -> PreparedClip:
    if clip.problem:
        raise ImportProblem(clip.problem)
    transcript = clean_transcript(clip.transcript)
    samples = load_audio(clip.audio, max_seconds=max_seconds)
    return PreparedClip(clip.label, encode_clip(samples), transcript, reviewed or clip.is_reviewed,
                        clip.timestamp, len(samples) / SAMPLE_RATE)


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


def insert_batch(conn: sqlite3.Connection, batch: list[PreparedClip]) -> None:
    """One short write transaction; the timestamp defaults to now (CURRENT_TIMESTAMP) like a live capture."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for c in batch:
            if c.timestamp:
                conn.execute(f"INSERT INTO {CLIP_TABLE} (transcript, audio_blob, is_reviewed, is_trained, timestamp) "
                             "VALUES (?, ?, ?, 0, ?)", (c.transcript, c.blob, int(c.is_reviewed), c.timestamp))
            else:
                conn.execute(f"INSERT INTO {CLIP_TABLE} (transcript, audio_blob, is_reviewed, is_trained) "
                             "VALUES (?, ?, ?, 0)", (c.transcript, c.blob, int(c.is_reviewed)))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class Command(BaseCommand):
    help = "Import audio files with transcripts (a folder, a JSONL manifest or an export zip) into the clip database."

    def add_arguments(self, parser):
        parser.add_argument("source", help="folder of audio + .txt files, a .jsonl manifest, or an export .zip")
        parser.add_argument("--database", help="capture SQLite file (default: settings.S2S_DATABASE)")
        parser.add_argument("--reviewed", action="store_true", help="mark every imported clip as reviewed")

    def handle(self, *args, source, database, reviewed, **options):
        source_path = Path(source)
        if not source_path.exists():
            raise CommandError(f"{source_path} does not exist")
        db_path = Path(database or settings.S2S_DATABASE)
        conn = open_capture_database(db_path, settings.S2S_SQLITE_BUSY_TIMEOUT_MS)
        try:
            with tempfile.TemporaryDirectory(prefix="importclips-") as tmp:
                clips = list(self.source_clips(source_path, Path(tmp)))
                imported, skipped, seconds = self.import_all(conn, clips, reviewed=reviewed)
        finally:
            conn.close()

        for label, reason in skipped:
            self.stderr.write(f"skipped {label}: {reason}")
        summary = f"Imported {imported} clip(s) ({seconds / 60:.1f} min of audio) into {db_path}; skipped {len(skipped)}"
        if imported == 0 and skipped:
            raise CommandError(summary + " (nothing imported)")
        self.stdout.write(self.style.SUCCESS(summary) if not skipped else self.style.WARNING(summary))

    def source_clips(self, source: Path, tmp: Path) -> Iterator[SourceClip]:
        if source.is_dir():
            yield from clips_in_folder(source)
        elif source.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(source) as zf:
                    zf.extractall(tmp)  # zipfile drops absolute paths and ".." parts
            except zipfile.BadZipFile as e:
                raise CommandError(f"{source} is not a zip file ({e})") from None
            manifests = sorted(tmp.rglob("manifest.jsonl"))
            if not manifests:
                raise CommandError(f"{source} holds no manifest.jsonl")
            yield from clips_in_manifest(manifests[0])
        elif source.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            yield from clips_in_manifest(source)
        else:
            raise CommandError(f"{source}: expected a folder, a .jsonl manifest or an export .zip")

    def import_all(self, conn, clips: list[SourceClip], *, reviewed: bool):
        max_seconds = float(settings.S2S_MAX_CLIP_SECONDS)
        imported, skipped, seconds, batch = 0, [], 0.0, []
        for clip in tqdm(clips, desc="importing", unit="clip"):
            try:
                batch.append(prepare(clip, reviewed=reviewed, max_seconds=max_seconds))
            except ImportProblem as e:
                skipped.append((clip.label, str(e)))
                continue
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
