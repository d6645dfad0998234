"""Write clips out as a training data set: NeMo JSONL, CSV, or a Hugging Face `datasets` directory.

Django-free: it takes `ExportClip`s (rows plus their stored blob) and writes files into a
target, either a folder (`exportclips out/`) or a zip streamed piece by piece (`GET /api/export`,
the admin action), so a large export never sits in memory or on disk as a whole.

Every format carries what a round trip needs (`importclips` reads all three back): the audio as
16 kHz 16-bit WAV with the exact stored samples, the transcript, the original transcript, both
flags and the timestamp as stored. A clip whose audio cannot be decoded is left out of the data
and listed with its reason in `problems.jsonl`.

- `jsonl`: `manifest.jsonl` in NeMo's shape (`audio_filepath`, `duration`, `text`, plus our
  fields) and `audio/<id>.wav`.
- `csv`: `metadata.csv` (`file_name`, `text`, ...) and `audio/<id>.wav`: a Hugging Face
  "audiofolder" as well.
- `hf`: what `datasets.Dataset.save_to_disk` writes (Arrow stream shards, `state.json`,
  `dataset_info.json`), with the WAV bytes inside an `Audio(sampling_rate=16000)` column, so
  `datasets.load_from_disk` opens it. Written with pyarrow directly: `datasets` needs torchcodec
  to encode audio, and the Arrow layout is all `load_from_disk` reads.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .audio import DEFAULT_MAX_SECONDS, SAMPLE_RATE, ClipDecodeError, decode_pcm, pcm_to_wav

FORMATS = ("jsonl", "csv", "hf")
MANIFEST = "manifest.jsonl"
CSV_FILE = "metadata.csv"
PROBLEMS = "problems.jsonl"
HF_STATE = "state.json"
HF_INFO = "dataset_info.json"
CSV_COLUMNS = ("file_name", "text", "duration", "id", "original_text", "is_reviewed", "is_trained", "timestamp")
HF_FEATURES = {
    "audio": {"sampling_rate": SAMPLE_RATE, "_type": "Audio"},
    "text": {"dtype": "string", "_type": "Value"},
    "duration": {"dtype": "float64", "_type": "Value"},
    "id": {"dtype": "int64", "_type": "Value"},
    "original_text": {"dtype": "string", "_type": "Value"},
    "is_reviewed": {"dtype": "bool", "_type": "Value"},
    "is_trained": {"dtype": "bool", "_type": "Value"},
    "timestamp": {"dtype": "string", "_type": "Value"},
}
HF_SHARD_BYTES = 500 * 1024 * 1024  # datasets' own default shard size
HF_BATCH_ROWS = 32


class ExportError(ValueError):
    """The export cannot be written as asked (unknown format, missing library)."""


@dataclass(frozen=True)
class ExportClip:
    """One clip to export: its row as stored, plus the stored blob (decoded here)."""

    id: int
    transcript: str | None
    original_transcript: str | None
    is_reviewed: bool
    is_trained: bool
    timestamp: str | None  # as stored, so an import writes back the same value
    blob: bytes | memoryview | None


@dataclass(frozen=True)
class ExportedClip:
    """A clip whose audio decoded: what every format writes."""

    clip: ExportClip
    wav: bytes
    duration: float

    @property
    def audio_path(self) -> str:
        return f"audio/{self.clip.id}.wav"

    def fields(self) -> dict:
        c = self.clip
        return {"text": c.transcript or "", "duration": self.duration, "id": c.id,
                "original_text": c.original_transcript, "is_reviewed": bool(c.is_reviewed),
                "is_trained": bool(c.is_trained), "timestamp": c.timestamp}


@dataclass
class ExportSummary:
    exported: int = 0
    problems: int = 0
    seconds: float = 0.0


# ---------------------------------------------------------------- targets

class DirectoryTarget:
    """Files under a folder (the command's `exportclips out/`)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def open(self, name: str) -> BinaryIO:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("wb")

    def take(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


class _Sink:
    """A write-only file for zipfile that hands out what was written so far."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


class ZipStreamTarget:
    """Members of a zip written to a non-seekable sink; `take()` returns the bytes ready to send."""

    def __init__(self, prefix: str = ""):
        self.sink = _Sink()
        self.prefix = prefix
        # WAV and Arrow barely compress: stored is as small and costs no CPU.
        self.zip = zipfile.ZipFile(self.sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def write(self, name: str, data: bytes) -> None:
        compress = zipfile.ZIP_DEFLATED if name.endswith((".jsonl", ".csv", ".json")) else zipfile.ZIP_STORED
        self.zip.writestr(self.prefix + name, data, compress_type=compress)

    def open(self, name: str) -> BinaryIO:
        return self.zip.open(self.prefix + name, "w", force_zip64=True)

    def take(self) -> bytes:
        return self.sink.take()

    def close(self) -> None:
        self.zip.close()


# ---------------------------------------------------------------- one clip

def decode_for_export(clip: ExportClip, max_seconds: float) -> ExportedClip:
    """The stored samples as a WAV file, bit for bit; ClipDecodeError when there is no audio."""
    pcm = decode_pcm(clip.blob, max_seconds=max_seconds)
    return ExportedClip(clip, pcm_to_wav(pcm), round(len(pcm) / SAMPLE_RATE, 4))


# ---------------------------------------------------------------- formats

def _write_jsonl(done: list[ExportedClip], target) -> None:
    lines = [json.dumps({"audio_filepath": e.audio_path, **e.fields()}, ensure_ascii=False) for e in done]
    target.write(MANIFEST, ("\n".join(lines) + "\n" if lines else "").encode())


def _write_csv(done: list[ExportedClip], target) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for e in done:
        row = {"file_name": e.audio_path, **e.fields()}
        row["original_text"] = row["original_text"] if row["original_text"] is not None else ""
        row["timestamp"] = row["timestamp"] if row["timestamp"] is not None else ""
        row["is_reviewed"], row["is_trained"] = int(row["is_reviewed"]), int(row["is_trained"])
        writer.writerow(row)
    target.write(CSV_FILE, buf.getvalue().encode())


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise ExportError("The Hugging Face format needs pyarrow: pip install 's2s-trainer[train]'.") from None
    return pyarrow


class _ArrowShards:
    """Record batches into `data-XXXXX.arrow` members, a new one past HF_SHARD_BYTES."""

    def __init__(self, target):
        self.pa = _pyarrow()
        self.target = target
        self.schema = self.pa.schema(
            [("audio", self.pa.struct([("bytes", self.pa.binary()), ("path", self.pa.string())])),
             ("text", self.pa.string()), ("duration", self.pa.float64()), ("id", self.pa.int64()),
             ("original_text", self.pa.string()), ("is_reviewed", self.pa.bool_()), ("is_trained", self.pa.bool_()),
             ("timestamp", self.pa.string())],
            metadata={"huggingface": json.dumps({"info": {"features": HF_FEATURES}})},
        )
        self.names: list[str] = []
        self.rows: list[ExportedClip] = []
        self.file = self.writer = None
        self.shard_bytes = 0
        self.fingerprint = hashlib.sha256()

    def add(self, e: ExportedClip) -> None:
        self.rows.append(e)
        self.fingerprint.update(f"{e.clip.id}:{len(e.wav)}:{e.clip.transcript}".encode())
        if len(self.rows) >= HF_BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None or self.shard_bytes >= HF_SHARD_BYTES:
            self._next_shard()
        fields = [e.fields() for e in self.rows]
        batch = self.pa.record_batch(
            [self.pa.array([{"bytes": e.wav, "path": f"{e.clip.id}.wav"} for e in self.rows], self.schema.field("audio").type),
             *[self.pa.array([f[name] for f in fields], self.schema.field(name).type) for name in self.schema.names[1:]]],
            schema=self.schema,
        )
        self.writer.write_batch(batch)
        self.shard_bytes += batch.nbytes
        self.rows.clear()

    def _next_shard(self) -> None:
        self._close_shard()
        name = f"data-{len(self.names):05d}.arrow"
        self.names.append(name)
        self.file = self.target.open(name)
        self.writer = self.pa.ipc.new_stream(self.file, self.schema)
        self.shard_bytes = 0

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.file.close()
            self.writer = self.file = None

    def close(self) -> None:
        self.flush()
        if not self.names:  # an empty export is still a data set, with no rows
            self._next_shard()
        self._close_shard()
        # Final names follow datasets' pattern, which needs the shard count: renaming inside a
        # streamed zip is impossible, so the names are data-00000.arrow ... and state.json says so.
        state = {"_data_files": [{"filename": n} for n in self.names], "_fingerprint": self.fingerprint.hexdigest()[:16],
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                 "_output_all_columns": False, "_split": None}
        info = {"citation": "", "description": "Speech clips exported by S2S Trainer", "features": HF_FEATURES,
                "homepage": "", "license": ""}
        self.target.write(HF_STATE, json.dumps(state, indent=2).encode())
        self.target.write(HF_INFO, json.dumps(info, indent=2).encode())


def write_export(clips: Iterable[ExportClip], fmt: str, target, *, max_seconds: float = DEFAULT_MAX_SECONDS,
                 on_clip: Callable[[ExportClip], None] | None = None) -> Iterator[bytes]:
    """Write `clips` in `fmt` into `target`, yielding the target's new bytes after each clip.

    A folder target yields nothing useful; a zip target yields the stream to send. The summary
    (`ExportSummary`) is the generator's return value.
    """
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    shards = _ArrowShards(target) if fmt == "hf" else None
    summary, done, problems = ExportSummary(), [], []
    for clip in clips:
        try:
            exported = decode_for_export(clip, max_seconds)
        except ClipDecodeError as e:
            problems.append({"id": clip.id, "problem": e.code, "detail": str(e), "text": clip.transcript})
        else:
            summary.exported += 1
            summary.seconds += exported.duration
            if shards is not None:
                shards.add(exported)
            else:
                target.write(exported.audio_path, exported.wav)
                done.append(ExportedClip(clip=ExportClip(**{**clip.__dict__, "blob": None}),
                                         wav=b"", duration=exported.duration))
        if on_clip:
            on_clip(clip)
        yield target.take()
    if shards is not None:
        shards.close()
    elif fmt == "jsonl":
        _write_jsonl(done, target)
    else:
        _write_csv(done, target)
    summary.problems = len(problems)
    if problems:
        target.write(PROBLEMS, ("\n".join(json.dumps(p, ensure_ascii=False) for p in problems) + "\n").encode())
    target.close()
    yield target.take()
    return summary


def export_to_folder(clips: Iterable[ExportClip], fmt: str, folder: Path, **kwargs) -> ExportSummary:
    return _drain(write_export(clips, fmt, DirectoryTarget(folder), **kwargs))


def export_to_zip_file(clips: Iterable[ExportClip], fmt: str, path: Path, **kwargs) -> ExportSummary:
    with Path(path).open("wb") as fh:
        chunks = write_export(clips, fmt, ZipStreamTarget(), **kwargs)
        while True:
            try:
                fh.write(next(chunks))
            except StopIteration as stop:
                return stop.value


def _drain(chunks: Iterator[bytes]) -> ExportSummary:
    while True:
        try:
            next(chunks)
        except StopIteration as stop:
            return stop.value
