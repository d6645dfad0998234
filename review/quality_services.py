"""Writes for quality control: cache checks and priorities, store re-transcriptions, accept suggestions.

The same rules as review.services: short transactions on the capture file, retried while the
live app holds the lock; a reviewer's accepted suggestion goes through `clip_update`, so it gets
an edit-history row and a new version like any other save.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connections
from django.utils import timezone

from .audio import ClipDecodeError, decode_clip
from .confidence import AsrResult, PriorityWeights, load_transcriber, priority_score, transcribe_clip, word_disagreement
from .quality import clip_findings
from .quality_selectors import (
    ASR_TABLE,
    CHECK_TABLE,
    QUALITY_TABLE,
    QualityInput,
    asr_model_dir,
    asr_model_id,
    clips_quality_stale,
    quality_inputs,
)
from .selectors import clip_blobs
from .services import _write, clip_update

log = logging.getLogger(__name__)
DB = "s2s"


def quality_of(item: QualityInput) -> tuple[list[str], float]:
    """(check codes, priority) of one clip. A re-transcription of other audio (the blob changed
    since) is ignored."""
    asr = None if item.asr_is_stale else item.asr
    codes = [f.code for f in clip_findings(item.metrics, item.transcript, item.duration_s)]
    return codes, priority_score(item.transcript, asr, codes, PriorityWeights())


def clips_quality_refresh(ids: Iterable[int]) -> int:
    """Recompute and cache the checks and priority of these clips; returns how many were written."""
    items = quality_inputs([int(i) for i in ids])
    if not items:
        return 0
    rows = [(item, *quality_of(item)) for item in items]
    stamp = connections[DB].ops.adapt_datetimefield_value(timezone.now())

    def work():
        with connections[DB].cursor() as cur:
            cur.executemany(
                f"INSERT INTO {QUALITY_TABLE} (clip_id, version, codes, priority, updated_at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT(clip_id) DO UPDATE SET version = excluded.version, codes = excluded.codes,"
                " priority = excluded.priority, updated_at = excluded.updated_at",
                [(item.clip_id, item.version, " ".join(codes), priority, stamp) for item, codes, priority in rows],
            )
            ids = [item.clip_id for item, _, _ in rows]
            cur.execute(f"DELETE FROM {CHECK_TABLE} WHERE clip_id IN ({', '.join(['%s'] * len(ids))})", ids)
            cur.executemany(f"INSERT INTO {CHECK_TABLE} (code, clip_id) VALUES (%s, %s)",
                            [(code, item.clip_id) for item, codes, _ in rows for code in codes])

    _write(work, what="the quality checks")
    return len(rows)


def clip_quality_refresh_quietly(clip_id: int) -> None:
    """After a reviewer's save: refresh the cache, but never fail the save over it (a later
    `scanclips` catches up on anything left stale)."""
    try:
        clips_quality_refresh([clip_id])
    except Exception as e:  # noqa: BLE001 - the save itself already succeeded
        log.warning("quality checks of clip %s not refreshed: %s", clip_id, e)


def quality_refresh_stale(*, limit: int | None = None, batch: int = 200,
                          on_batch: Callable[[int], None] | None = None) -> int:
    """Bring every clip's cached checks up to date (scanclips); returns how many were refreshed."""
    done = 0
    while limit is None or done < limit:
        ids = clips_quality_stale(batch if limit is None else min(batch, limit - done))
        if not ids:
            break
        done += clips_quality_refresh(ids)
        if on_batch:
            on_batch(done)
    return done


def clip_asr_save(clip_id: int, model_id: str, result: AsrResult, blob_length: int | None) -> None:
    stamp = connections[DB].ops.adapt_datetimefield_value(timezone.now())
    min_word = result.min_word_probability if result.words else None

    def work():
        with connections[DB].cursor() as cur:
            cur.execute(
                f"INSERT INTO {ASR_TABLE} (clip_id, model_id, text, avg_logprob, no_speech_prob, min_word_prob, words,"
                " blob_length, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT(clip_id) DO UPDATE SET model_id = excluded.model_id, text = excluded.text,"
                " avg_logprob = excluded.avg_logprob, no_speech_prob = excluded.no_speech_prob,"
                " min_word_prob = excluded.min_word_prob, words = excluded.words,"
                " blob_length = excluded.blob_length, created_at = excluded.created_at",
                [clip_id, model_id, result.text, result.avg_logprob, result.no_speech_prob, min_word,
                 json.dumps(result.words_json(), ensure_ascii=False), blob_length, stamp],
            )

    _write(work, what=f"the re-transcription of clip {clip_id}")


@dataclass
class TranscribeProgress:
    done: int
    total: int
    clip_id: int | None = None
    failed: int = 0


def clips_transcribe(ids: list[int], *, model: str | None = None, batch: int = 8,
                     on_progress: Callable[[TranscribeProgress], None] | None = None) -> dict:
    """Re-transcribe clips with the current (or chosen) model; store text, scores and priority.

    Blobs are read a small batch at a time; a clip whose audio does not decode is counted as
    failed and skipped. Returns counts and the model used.
    """
    model_dir = asr_model_dir(model)
    model_id = asr_model_id(model_dir)
    transcriber = load_transcriber(model_dir)
    done = failed = 0
    total = len(ids)
    for start in range(0, total, batch):
        chunk = ids[start:start + batch]
        blobs = clip_blobs(chunk)
        for clip_id in chunk:
            blob = blobs.get(clip_id)
            try:
                samples = decode_clip(blob)
            except ClipDecodeError as e:
                log.info("clip %s not re-transcribed: %s", clip_id, e)
                failed += 1
            else:
                clip_asr_save(clip_id, model_id, transcribe_clip(transcriber, samples), len(bytes(blob)))
                done += 1
            if on_progress:
                on_progress(TranscribeProgress(done + failed, total, clip_id, failed))
        clips_quality_refresh(chunk)
    return {"model": model_id, "transcribed": done, "failed": failed}


# ------------------------------------------------------------------------------------------------
# accepting suggestions in bulk
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AcceptRule:
    """When a suggestion is safe to take without listening: the model says the same words as
    the stored transcript (case and punctuation aside) and is sure of every one of them."""

    min_avg_logprob: float = -0.3
    min_word_probability: float = 0.6
    max_disagreement: float = 0.0


def suggestion_acceptable(item: QualityInput, rule: AcceptRule = AcceptRule()) -> str:
    """"" when the suggestion may be accepted, else the reason it may not."""
    asr = item.asr
    if asr is None:
        return "no re-transcription"
    if item.asr_is_stale:
        return "audio changed since it was re-transcribed"
    if not asr.text.strip():
        return "the model heard nothing"
    if word_disagreement(item.transcript, asr.text) > rule.max_disagreement:
        return "the model disagrees with the stored transcript"
    if asr.avg_logprob < rule.min_avg_logprob:
        return f"average log-probability {asr.avg_logprob:.2f} is below {rule.min_avg_logprob}"
    if asr.words and asr.min_word_probability < rule.min_word_probability:
        return f"a word's probability is {asr.min_word_probability:.2f}, below {rule.min_word_probability}"
    return ""


def clips_accept_preview(ids: Iterable[int], rule: AcceptRule = AcceptRule()) -> tuple[list[QualityInput], dict[int, str]]:
    """(acceptable clips, {clip id: reason} for the others) without writing anything."""
    ok, skipped = [], {}
    for item in quality_inputs([int(i) for i in ids]):
        reason = suggestion_acceptable(item, rule)
        if reason:
            skipped[item.clip_id] = reason
        else:
            ok.append(item)
    return ok, skipped


def clips_accept_suggestions(ids: Iterable[int], user, rule: AcceptRule = AcceptRule()) -> dict:
    """Take the model's transcript and mark reviewed, for every clip the rule allows.

    Each clip goes through `clip_update` (edit history, version bump, original kept), so the
    change is recorded and undoable like a reviewer's own save.
    """
    ok, skipped = clips_accept_preview(ids, rule)
    accepted = []
    for item in ok:
        clip_update(item.clip_id, user, transcript=item.asr.text, is_reviewed=True)
        accepted.append(item.clip_id)
    if accepted:
        clips_quality_refresh(accepted)
    return {"accepted": accepted, "skipped": skipped}
