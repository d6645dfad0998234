"""Django-free: re-transcribe clips with a faster-whisper model and score how likely a stored
transcript is wrong.

Reviewing is the slow part, so the review queue can put first the clips a person is most likely
to have to fix. The signals, each measured alone on the dev capture in docs/benchmarks.md
(active learning): the model's own confidence (average log-probability, lowest word probability),
and the disagreement between the stored transcript and the model's re-transcription. With the
live model fine-tuned on the clips already reviewed, disagreement is by far the strongest signal:
the new model has learnt the names and words the old one got wrong.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

LOW_WORD_PROBABILITY = 0.5  # the review page highlights words below this


class TranscriberError(RuntimeError):
    """The model directory cannot be loaded by faster-whisper."""


@dataclass(frozen=True)
class WordConfidence:
    word: str
    start: float
    end: float
    probability: float


@dataclass
class AsrResult:
    """One clip's re-transcription: what the model says and how sure it is."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    words: list[WordConfidence] = field(default_factory=list)

    @property
    def min_word_probability(self) -> float:
        return min((w.probability for w in self.words), default=0.0)

    def words_json(self) -> list[dict]:
        return [{k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(w).items()} for w in self.words]


def load_transcriber(model_dir: str | Path, *, device: str = "auto", compute_type: str = "int8", cpu_threads: int = 0):
    """A faster-whisper WhisperModel for a CTranslate2 directory (never downloads)."""
    from faster_whisper import WhisperModel

    path = Path(model_dir)
    if not (path / "model.bin").is_file():
        raise TranscriberError(f"{path} is not a faster-whisper model directory (no model.bin)")
    try:
        return WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=cpu_threads,
                            local_files_only=True)
    except Exception as e:  # ctranslate2 raises RuntimeError/ValueError for bad or partial files
        raise TranscriberError(f"faster-whisper cannot load {path}: {e}") from None


def transcribe_clip(model, samples: np.ndarray, language: str | None = "en") -> AsrResult:
    """Greedy decoding with word timestamps (they carry each word's probability).

    One window, no conditioning on earlier text and no VAD: clips are single utterances, and the
    scores must describe exactly the audio the reviewer hears.
    """
    if getattr(model, "model", None) is not None and not model.model.is_multilingual:
        language = None
    segments, _info = model.transcribe(
        np.asarray(samples, dtype=np.float32), language=language, beam_size=1, temperature=0.0,
        word_timestamps=True, condition_on_previous_text=False, vad_filter=False, without_timestamps=False,
    )
    segments = list(segments)
    words = [WordConfidence(w.word.strip(), float(w.start), float(w.end), float(w.probability))
             for s in segments for w in (s.words or []) if w.word.strip()]
    text = " ".join(s.text.strip() for s in segments).strip()
    if not segments:
        return AsrResult(text="", avg_logprob=-10.0, no_speech_prob=1.0, words=[])
    # Segment scores weighted by their token counts: a long segment says more than a short one.
    weights = [max(1, len(s.tokens)) for s in segments]
    avg = sum(s.avg_logprob * w for s, w in zip(segments, weights, strict=True)) / sum(weights)
    return AsrResult(text=text, avg_logprob=float(avg), no_speech_prob=float(max(s.no_speech_prob for s in segments)),
                     words=words)


# ------------------------------------------------------------------------------------------------
# disagreement and priority
# ------------------------------------------------------------------------------------------------

def _words(text: str | None, normalize: Callable[[str], str] | None) -> list[str]:
    text = text or ""
    if normalize is not None:
        return normalize(text).split()
    return "".join(c.lower() if c.isalnum() or c.isspace() or c == "'" else " " for c in text).split()


def _edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance over words (substitutions, insertions, deletions)."""
    prev = list(range(len(b) + 1))
    for i, wa in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, wb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (wa != wb))
        prev = cur
    return prev[-1]


def word_edits(stored: str | None, suggested: str | None, normalize: Callable[[str], str] | None = None) -> int:
    """How many words a reviewer would have to change to turn `stored` into `suggested`
    (case and punctuation aside)."""
    return _edit_distance(_words(stored, normalize), _words(suggested, normalize))


def word_disagreement(stored: str | None, suggested: str | None, normalize: Callable[[str], str] | None = None) -> float:
    """Word edits over the longer transcript's length: 0 = same words, 1 = none shared."""
    a, b = _words(stored, normalize), _words(suggested, normalize)
    return _edit_distance(a, b) / max(len(a), len(b)) if (a or b) else 0.0


@dataclass(frozen=True)
class PriorityWeights:
    """How the signals add up; chosen on the dev capture (docs/benchmarks.md, active learning)."""

    edits: float = 1.0          # per word the re-transcription disagrees with
    low_confidence: float = 1.0  # 1 - exp(avg_logprob): 0 for a sure model, towards 1 for a lost one
    low_word: float = 0.5       # 1 - lowest word probability
    flag: float = 0.5           # per quality check that fired


def priority_score(stored: str | None, asr: AsrResult | None, flags: Sequence[str] = (),
                   weights: PriorityWeights = PriorityWeights(),
                   normalize: Callable[[str], str] | None = None) -> float:
    """Higher = review sooner: expected number of words a person will change, roughly.

    Disagreement is counted in words (not as a rate) because the benchmark's target is the share
    of word errors found: a long sentence with three wrong words is worth more than a short one
    with one. Without a re-transcription only the quality flags count.
    """
    score = weights.flag * len(flags)
    if asr is None:
        return score
    score += weights.edits * word_edits(stored, asr.text, normalize)
    score += weights.low_confidence * (1.0 - math.exp(min(0.0, asr.avg_logprob)))
    if asr.words:
        score += weights.low_word * (1.0 - asr.min_word_probability)
    return round(score, 6)
