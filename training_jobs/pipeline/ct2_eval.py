"""Score a CTranslate2 (faster-whisper) model on the test split, the way the live app will run it.

Two uses: verifying an export (faster-whisper on the exported model must score within
`MAX_EXPORT_WER_GAP` of the transformers model it came from, on the same clips) and measuring the
live model on a candidate's test clips before a promotion. Decoding is greedy, one 30 s window,
no VAD, so the numbers are comparable to `evaluate.transcribe` (same log-mel features).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from training_jobs.pipeline.evaluate import clip_wer, error_rates

MAX_EXPORT_WER_GAP = 0.005  # 0.5 WER points
FW_GREEDY = dict(beam_size=1, without_timestamps=True, temperature=0, condition_on_previous_text=False,
                 vad_filter=False)


class ExportVerificationError(RuntimeError):
    """The exported model transcribes worse than the model it was exported from."""


@dataclass
class Score:
    wer: float
    cer: float
    n: int
    clips: list[dict]  # {"id", "reference", "text", "wer"} per clip

    def as_dict(self) -> dict:
        return {"wer": self.wer, "cer": self.cer, "n": self.n, "clips": self.clips}


def load_ct2(path: str | Path, compute_type: str = "default"):
    """A faster-whisper model on the CPU (CUDA when S2S_CT2_DEVICE=cuda). `default` computes in the
    type the weights were stored in where the device supports it (int8 stays int8, float16 on a CPU
    runs as float32)."""
    from faster_whisper import WhisperModel

    device = os.environ.get("S2S_CT2_DEVICE", "cpu")
    threads = int(os.environ.get("S2S_CT2_THREADS", "0") or 0)
    return WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=threads)


def transcribe_ct2(model, samples_list, language: str | None = None, on_clip=None) -> list[str]:
    """Greedy text per clip from a faster-whisper model (an instance or a directory);
    `on_clip(done, total)` after each clip (a progress bar, a log line)."""
    if isinstance(model, (str, Path)):
        model = load_ct2(model)
    options = dict(FW_GREEDY)
    if model.model.is_multilingual:
        options.update(language=language or "en", task="transcribe")
    texts = []
    for samples in samples_list:
        segments, _ = model.transcribe(samples, **options)
        texts.append("".join(s.text for s in segments).strip())
        if on_clip is not None:
            on_clip(len(texts), len(samples_list))
    return texts


def score_ct2(model, rows, language: str = "en", on_clip=None) -> Score:
    """faster-whisper WER/CER over (clip id, samples, reference) rows, with the per-clip results."""
    if not rows:
        return Score(0.0, 0.0, 0, [])
    ids, samples, refs = (list(column) for column in zip(*rows, strict=True))
    hyps = transcribe_ct2(model, samples, language, on_clip)
    rates = error_rates(refs, hyps, language)
    clips = [{"id": cid, "reference": ref, "text": hyp, "wer": clip_wer(ref, hyp, language)}
             for cid, ref, hyp in zip(ids, refs, hyps, strict=True)]
    return Score(rates["wer"], rates["cer"], rates["n"], clips)


def verify_export(ct2_dir: str | Path, rows, transformers_wer: float, language: str = "en",
                  max_gap: float = MAX_EXPORT_WER_GAP, on_clip=None) -> dict:
    """faster-whisper on the export vs the transformers model's test WER. Returns both (and the
    per-clip results); `verified` is False when the export is more than `max_gap` worse.

    One-sided on purpose: int8 rounding moves a few words either way, and on the dev capture's 50
    test clips int8 scored 0.67 points *better* than the model it came from (docs/benchmarks.md);
    a check that rejected that would refuse the quantization the live app is meant to run."""
    score = score_ct2(load_ct2(ct2_dir), rows, language, on_clip)
    gap = score.wer - transformers_wer
    return {"fw_wer": score.wer, "fw_cer": score.cer, "transformers_wer": transformers_wer, "gap": gap,
            "max_gap": max_gap, "verified": gap <= max_gap, "n": score.n, "clips": score.clips}
