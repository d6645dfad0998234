"""Did fine-tuning help? Word and character error rates of the base and the new model on held-out clips.

Scores follow the Whisper papers: both sides go through Whisper's English text normalizer (case,
punctuation, numbers, British -> American spelling) before jiwer counts edits, so "Colour, 7 PM" and
"color seven p.m." do not count as errors the reviewer never cared about. Transcripts come from
greedy decoding on `features.log_mel` input, i.e. what faster-whisper would say in production.

`whisper_english_spelling.json` is Whisper's British -> American spelling map (openai-whisper,
whisper/normalizers/english.json, MIT licence); the hub ships it as each model's normalizer.json.
"""
from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import jiwer

from training_jobs.pipeline.features import log_mel_batch

ENGLISH_SPELLING = Path(__file__).with_name("whisper_english_spelling.json")


@lru_cache(maxsize=1)
def _english_spelling() -> dict[str, str]:
    return json.loads(ENGLISH_SPELLING.read_text(encoding="utf-8")) if ENGLISH_SPELLING.is_file() else {}


@lru_cache(maxsize=4)
def _normalizer(language: str):
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    if language in ("en", "english", ""):
        return EnglishTextNormalizer(_english_spelling())
    # Whisper's basic normalizer for other languages; diacritics are kept (they carry meaning).
    return BasicTextNormalizer()


def normalize(text: str | None, language: str = "en") -> str:
    """Whisper's text normalization: EnglishTextNormalizer for English, BasicTextNormalizer otherwise."""
    return " ".join(_normalizer((language or "en").lower())(text or "").split())


def _counts(ref: str, hyp: str, unit: str) -> tuple[int, int]:
    """(edits, reference length) after normalization; an empty reference counts every hypothesis
    unit as an insertion (jiwer refuses to divide by zero, we just count)."""
    ref_units = ref.split() if unit == "word" else list(ref)
    hyp_units = hyp.split() if unit == "word" else list(hyp)
    if not ref_units:
        return len(hyp_units), 0
    if not hyp_units:
        return len(ref_units), len(ref_units)
    out = jiwer.process_words(ref, hyp) if unit == "word" else jiwer.process_characters(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, len(ref_units)


def _rate(edits: int, total: int) -> float:
    if total == 0:
        return 0.0 if edits == 0 else float(edits)
    return edits / total


def error_rates(refs: list[str], hyps: list[str], language: str = "en") -> dict:
    """Corpus WER and CER (edits over all reference words/characters) after normalization."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    word_edits = word_total = char_edits = char_total = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = normalize(ref, language), normalize(hyp, language)
        e, t = _counts(r, h, "word")
        word_edits, word_total = word_edits + e, word_total + t
        e, t = _counts(r, h, "char")
        char_edits, char_total = char_edits + e, char_total + t
    return {"wer": _rate(word_edits, word_total), "cer": _rate(char_edits, char_total), "n": len(refs)}


def clip_wer(ref: str, hyp: str, language: str = "en") -> float:
    return _rate(*_counts(normalize(ref, language), normalize(hyp, language), "word"))


def transcribe(model, processor, samples_list, batch_size: int = 8, device: str = "cpu",
               language: str | None = None) -> list[str]:
    """Greedy transcripts, batched, from faster-whisper-identical features (see features.py)."""
    import torch

    n_mels = model.config.num_mel_bins
    dtype = next(model.parameters()).dtype
    kwargs = {"num_beams": 1, "do_sample": False}
    if getattr(model.generation_config, "is_multilingual", False):
        kwargs.update(task="transcribe", language=language or getattr(model.generation_config, "language", None) or "en")
    was_training = model.training
    model.eval()
    texts: list[str] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(samples_list), batch_size):
                chunk = samples_list[start : start + batch_size]
                feats = torch.from_numpy(log_mel_batch(chunk, n_mels=n_mels)).to(device=device, dtype=dtype)
                ids = model.generate(input_features=feats, **kwargs)
                texts += [t.strip() for t in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    finally:
        model.train(was_training)
    return texts


@dataclass
class ClipResult:
    id: int | str
    reference: str
    base: str
    new: str
    base_wer: float
    new_wer: float

    @property
    def delta(self) -> float:
        return self.new_wer - self.base_wer


@dataclass
class EvalReport:
    base: dict
    new: dict
    clips: list[ClipResult] = field(default_factory=list)
    language: str = "en"

    @property
    def relative_wer_change(self) -> float | None:
        """(new - base) / base: negative is better; None when the base made no errors."""
        return None if not self.base["wer"] else (self.new["wer"] - self.base["wer"]) / self.base["wer"]

    @property
    def relative_cer_change(self) -> float | None:
        return None if not self.base["cer"] else (self.new["cer"] - self.base["cer"]) / self.base["cer"]

    def as_dict(self) -> dict:
        return {
            "language": self.language,
            "base": self.base,
            "new": self.new,
            "relative_wer_change": self.relative_wer_change,
            "relative_cer_change": self.relative_cer_change,
            "clips": [asdict(c) | {"delta_wer": c.delta} for c in self.clips],
        }


def compare(refs, base_hyps, new_hyps, clip_ids, language: str = "en") -> EvalReport:
    """Base vs new on the same clips: corpus rates plus a per-clip table."""
    if not (len(refs) == len(base_hyps) == len(new_hyps) == len(clip_ids)):
        raise ValueError("refs, base_hyps, new_hyps and clip_ids must have the same length")
    clips = [
        ClipResult(cid, ref, b, n, clip_wer(ref, b, language), clip_wer(ref, n, language))
        for cid, ref, b, n in zip(clip_ids, refs, base_hyps, new_hyps, strict=True)
    ]
    return EvalReport(base=error_rates(refs, base_hyps, language), new=error_rates(refs, new_hyps, language),
                      clips=clips, language=language)


def _md(text) -> str:
    """Table-cell safe: HTML-escaped (a transcript may contain <script>), pipes, markdown and newlines neutralised."""
    text = html.escape(str(text), quote=False)
    for ch in "\\`*_[]|#~":
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split()) or "&nbsp;"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _signed_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}%"


def write_report(report: EvalReport, out_dir) -> tuple[Path, Path]:
    """eval.json (everything, machine readable) and eval.md (for people): summary, then the clips
    that got worse (worst first), then those that got better (best first), then the unchanged."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "eval.json", out_dir / "eval.md"
    json_path.write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")

    b, n = report.base, report.new
    lines = [
        "# Evaluation: base vs fine-tuned",
        "",
        f"{b['n']} held-out clips, greedy decoding, Whisper text normalization ({report.language}).",
        "",
        "| Metric | Base | New | Relative change |",
        "|---|---:|---:|---:|",
        f"| WER | {_pct(b['wer'])} | {_pct(n['wer'])} | {_signed_pct(report.relative_wer_change)} |",
        f"| CER | {_pct(b['cer'])} | {_pct(n['cer'])} | {_signed_pct(report.relative_cer_change)} |",
        "",
    ]
    worse = sorted((c for c in report.clips if c.delta > 0), key=lambda c: -c.delta)
    better = sorted((c for c in report.clips if c.delta < 0), key=lambda c: c.delta)
    same = [c for c in report.clips if c.delta == 0]
    for title, rows in (("Regressions", worse), ("Improvements", better), ("Unchanged", same)):
        lines += [f"## {title} ({len(rows)})", ""]
        if not rows:
            lines += ["None.", ""]
            continue
        lines += ["| Clip | Reference | Base | New | Base WER | New WER |", "|---|---|---|---|---:|---:|"]
        lines += [f"| {_md(c.id)} | {_md(c.reference)} | {_md(c.base)} | {_md(c.new)} | "
                  f"{_pct(c.base_wer)} | {_pct(c.new_wer)} |" for c in rows]
        lines.append("")
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return json_path, md_path
