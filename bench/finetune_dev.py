"""Fine-tuning benchmark on the dev capture: our pipeline vs the standard Hugging Face recipe.

    .venv/bin/python bench/finetune_dev.py                                   # recipe + our default set
    .venv/bin/python bench/finetune_dev.py --configs recipe ours-fe-1e-4     # a chosen subset
    .venv/bin/python bench/finetune_dev.py --list                            # what each config does

Data: `../shared/data/dev_s2s.db` (the live app's schema) + `dev_truth.jsonl`. "Reviewed as a person
would" = every clip's transcript replaced by its truth; the jsonl's `split` field gives train/test.
Both sides train the bundled tiny.en (imported once from CTranslate2) on the same clips (one
snapshot written by `pipeline.data.prepare_snapshot`, so its clip checks apply to both), with the
same batch size and optimizer step budget, and both are scored the same way: greedy decoding on
faster-whisper's features (`evaluate.transcribe`), i.e. what production would say.

Each configuration runs in its own child process, one after another (peak RSS is per process; the
two-core machine is shared, so the load average is recorded before and after each run and the
recipe runs in the same invocation as ours). "train wall" = feature preparation + optimizer steps;
loading and the final base/new evaluation are reported apart (they are the same for everyone).
Nothing here is imported by the tests or needed by the product at runtime.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

OUT = ROOT / "bench" / "out" / "finetune"
DEFAULT_DATA = ROOT.parent / "shared" / "data"

# name -> (kind, TrainConfig overrides, description)
CONFIGS = {
    "base": ("base", {}, "no training: the imported tiny.en on the test split (run first, shared)"),
    "recipe": ("recipe", {"learning_rate": 1e-5},
               "HF blog recipe: WhisperFeatureExtractor in datasets.map, DataCollatorSpeechSeq2SeqWithPadding, "
               "Seq2SeqTrainer, AdamW lr 1e-5, linear warm-up 10 %, full fine-tune"),
    "ours-1e-5": ("ours", {"learning_rate": 1e-5},
                  "pipeline.train, same hyper-parameters as the recipe (features = faster-whisper's)"),
    "ours-3e-5": ("ours", {"learning_rate": 3e-5}, "pipeline.train, full fine-tune, lr 3e-5"),
    "ours-1e-4": ("ours", {"learning_rate": 1e-4}, "pipeline.train, full fine-tune, lr 1e-4"),
    "ours-fe-1e-4": ("ours", {"learning_rate": 1e-4, "freeze_encoder": True},
                     "pipeline.train, encoder frozen (decoder only), lr 1e-4"),
    "ours-fe-3e-4": ("ours", {"learning_rate": 3e-4, "freeze_encoder": True},
                     "pipeline.train, encoder frozen (decoder only), lr 3e-4"),
    "cached-fe-1e-4": ("cached", {"learning_rate": 1e-4, "freeze_encoder": True},
                       "prototype loop in this file: encoder frozen and its outputs computed once per clip, "
                       "then decoder-only steps (same schedule, collate and clipping as pipeline.train)"),
    "cached-fe-3e-4": ("cached", {"learning_rate": 3e-4, "freeze_encoder": True},
                       "as cached-fe-1e-4 with lr 3e-4"),
}
DEFAULT_CONFIGS = ["recipe", "ours-fe-1e-4", "cached-fe-1e-4", "ours-1e-4"]


# ------------------------------------------------------------------------------------------------
# data: the dev capture, reviewed with the truth, as one snapshot
# ------------------------------------------------------------------------------------------------

def build_snapshot(db: Path, truth: Path, out: Path, seed: int, only: tuple[str, ...] | None = None) -> dict:
    import sqlite3

    import numpy as np

    from review.audio import decode_pcm
    from training_jobs.pipeline import data
    from training_jobs.pipeline.config import TrainConfig
    from training_jobs.pipeline.source import ClipRecord, content_hash

    if (out / data.MANIFEST).is_file():
        return json.loads((out / data.MANIFEST).read_text())
    rows = [json.loads(line) for line in truth.read_text().splitlines() if line.strip()]
    split_of = {int(r["id"]): {"train": "train", "val": "validation", "validation": "validation",
                               "test": "test"}[r["split"]] for r in rows}
    if only:
        split_of = {i: s for i, s in split_of.items() if s in only}
    text_of = {int(r["id"]): r["truth"] for r in rows if int(r["id"]) in split_of}
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    records = []
    for clip_id, blob in conn.execute("SELECT id, audio_blob FROM s2s_training_data ORDER BY id"):
        if clip_id not in text_of:
            continue
        pcm = decode_pcm(blob)
        records.append(ClipRecord(clip_id, text_of[clip_id], pcm.astype(np.float32) / 32768.0,
                                  content_hash(text_of[clip_id], pcm)))
    conn.close()
    real_split_for = data.split_for
    data.split_for = lambda clip_id, val, test: split_of[int(clip_id)]  # the jsonl decides the split
    try:
        info = data.prepare_snapshot(records, TrainConfig(val_split=0.0, test_split=0.0, seed=seed), out)
    finally:
        data.split_for = real_split_for
    return info.manifest


# ------------------------------------------------------------------------------------------------
# the three kinds of run (each in a child process)
# ------------------------------------------------------------------------------------------------

def run_recipe(overrides: dict, args, snapshot: Path, base_path: Path, workdir: Path) -> dict:
    """The standard Hugging Face fine-tuning recipe (the "Fine-Tune Whisper" blog), on CPU."""
    from dataclasses import dataclass
    from typing import Any

    import datasets
    import torch
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    from training_jobs.pipeline.data import load_snapshot
    from training_jobs.pipeline.models import load_model_and_processor

    datasets.disable_caching()  # a cached map from an earlier invocation would hide the feature cost
    dataset, _ = load_snapshot(snapshot)
    model, processor = load_model_and_processor(base_path)
    t0, cpu0 = time.monotonic(), time.process_time()

    def prepare_dataset(batch):
        batch["input_features"] = processor.feature_extractor(batch["audio"], sampling_rate=16000).input_features[0]
        batch["labels"] = processor.tokenizer(batch["text"]).input_ids
        return batch

    train_ds = dataset["train"].map(prepare_dataset, remove_columns=dataset["train"].column_names)
    t_features = time.monotonic() - t0

    @dataclass
    class DataCollatorSpeechSeq2SeqWithPadding:
        processor: Any
        decoder_start_token_id: int

        def __call__(self, features):
            input_features = [{"input_features": f["input_features"]} for f in features]
            batch = self.processor.feature_extractor.pad(input_features, return_tensors="pt")
            label_features = [{"input_ids": f["labels"]} for f in features]
            labels_batch = self.processor.tokenizer.pad(label_features, return_tensors="pt")
            labels = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
            if (labels[:, 0] == self.decoder_start_token_id).all().cpu().item():
                labels = labels[:, 1:]
            batch["labels"] = labels
            return batch

    training_args = Seq2SeqTrainingArguments(
        output_dir=str(workdir / "recipe"),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=overrides["learning_rate"],
        warmup_steps=max(1, int(0.1 * args.steps)),
        max_steps=args.steps,
        lr_scheduler_type="linear",
        eval_strategy="no",
        save_strategy="no",
        logging_steps=10,
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=args.seed,
        predict_with_generate=False,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = Seq2SeqTrainer(
        args=training_args, model=model, train_dataset=train_ds,
        data_collator=DataCollatorSpeechSeq2SeqWithPadding(processor, model.config.decoder_start_token_id),
        processing_class=processor.feature_extractor,
    )
    t1 = time.monotonic()
    out = trainer.train()
    t_train = time.monotonic() - t1
    cpu = time.process_time() - cpu0
    model.eval()
    model.config.use_cache = True
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = _score(model, processor, dataset, base_path, features_s=t_features, steps_s=t_train,
                    steps=out.global_step)
    result["train_cpu_s"] = cpu
    # The recipe's own view: its model decoded on transformers' features (what it was trained on).
    result["new_wer_hf_features"] = _wer_hf_features(model, processor, dataset["test"])
    result["train_loss_log"] = losses
    del torch
    return result


def run_ours(overrides: dict, args, snapshot: Path, base_path: Path, workdir: Path) -> dict:
    """pipeline.train as the product runs it. Its snapshot holds the train split only, so train()
    skips its own base/new test evaluation; the new model is scored here like every other config."""
    from training_jobs.pipeline.config import TrainConfig
    from training_jobs.pipeline.data import load_snapshot
    from training_jobs.pipeline.models import load_model_and_processor
    from training_jobs.pipeline.train import train

    config = TrainConfig(base_model=str(base_path), batch_size=args.batch_size, max_steps=args.steps,
                         epochs=100, val_split=0.0, test_split=0.0, warmup_ratio=0.1, seed=args.seed,
                         checkpoint_every=10_000, early_stopping_patience=0, device="cpu", precision="fp32",
                         **overrides)
    cpu0 = time.process_time()
    res = train(config, Path(str(snapshot) + "-train-only"), workdir / "ours", cache_dir=workdir / "cache")
    cpu = time.process_time() - cpu0  # includes loading and saving the model: slightly against us
    t = json.loads((res.model_dir / "s2s_metadata.json").read_text())["timings"]
    model, processor = load_model_and_processor(res.model_dir)
    dataset, _ = load_snapshot(snapshot)
    result = _score(model, processor, dataset, base_path, features_s=t["features"], steps_s=t["training"],
                    steps=res.metrics["steps"])
    result["train_loss_log"] = [h["train_loss"] for h in res.history if "train_loss" in h][9::10]
    result["train_cpu_s"] = cpu
    result["trainable_parameters"] = res.metrics["trainable_parameters"]
    return result


def run_cached(overrides: dict, args, snapshot: Path, base_path: Path, workdir: Path) -> dict:
    """Frozen encoder => its output for a clip never changes: compute it once, train the decoder.

    Everything else as pipeline.train (log-mel features, labels padded to the batch's longest, AdamW,
    linear warm-up/decay, grad-norm clipping 1.0, seeded epoch order)."""
    import numpy as np
    import torch
    from transformers import get_linear_schedule_with_warmup

    from training_jobs.pipeline.data import load_snapshot
    from training_jobs.pipeline.features import log_mel
    from training_jobs.pipeline.models import load_model_and_processor
    from training_jobs.pipeline.train import collate, epoch_order, label_ids, seed_everything

    seed_everything(args.seed)
    dataset, _ = load_snapshot(snapshot)
    model, processor = load_model_and_processor(base_path)
    model.config.use_cache = False
    train_split = dataset["train"]
    t0, cpu0 = time.monotonic(), time.process_time()
    model.model.encoder.requires_grad_(False)
    model.model.encoder.eval()
    start_id = model.config.decoder_start_token_id
    labels = [label_ids(processor.tokenizer, t, start_id) for t in train_split["text"]]
    feats = np.stack([log_mel(np.asarray(a, dtype=np.float32)) for a in train_split["audio"]])
    enc = []
    with torch.inference_mode():
        for s in range(0, len(feats), 16):
            enc.append(model.model.encoder(torch.from_numpy(feats[s : s + 16])).last_hidden_state)
    encoder_out = torch.cat(enc).clone()
    t_features = time.monotonic() - t0

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=overrides["learning_rate"], weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * args.steps), args.steps)
    model.model.decoder.train()
    n, bs = len(labels), args.batch_size
    t1, step, epoch, losses = time.monotonic(), 0, 0, []
    while step < args.steps:
        order = epoch_order(args.seed, epoch, n)
        for b in range(0, n, bs):
            idx = order[b : b + bs]
            batch = collate(idx, feats, labels)
            out = model(encoder_outputs=(encoder_out[idx],), labels=batch["labels"])
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(out.loss))
            if step >= args.steps:
                break
        epoch += 1
    t_train = time.monotonic() - t1
    cpu = time.process_time() - cpu0
    model.eval()
    model.config.use_cache = True
    result = _score(model, processor, dataset, base_path, features_s=t_features, steps_s=t_train, steps=step)
    result["train_loss_log"] = losses[9::10]
    result["train_cpu_s"] = cpu
    return result


def _score(model, processor, dataset, base_path, *, features_s, steps_s, steps) -> dict:
    """Test WER of the new model; the base model's transcripts are computed once per invocation."""
    import numpy as np

    from training_jobs.pipeline import evaluate

    test = dataset["test"]
    samples = [np.asarray(a, dtype=np.float32) for a in test["audio"]]
    t0 = time.monotonic()
    new_hyps = evaluate.transcribe(model, processor, samples, batch_size=8)
    base_hyps = json.loads(Path(os.environ["FINETUNE_BASE_HYPS"]).read_text())
    report = evaluate.compare(list(test["text"]), base_hyps, new_hyps, list(test["id"]))
    return {"steps": steps, "features_s": features_s, "steps_s": steps_s, "train_wall_s": features_s + steps_s,
            "eval_s": time.monotonic() - t0, "base_wer": report.base["wer"], "new_wer": report.new["wer"],
            "base_cer": report.base["cer"], "new_cer": report.new["cer"], "new_hyps": new_hyps,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def run_base(overrides: dict, args, snapshot: Path, base_path: Path, workdir: Path) -> dict:
    """The untouched base model on the test split (shared by every configuration)."""
    import numpy as np

    from training_jobs.pipeline import evaluate
    from training_jobs.pipeline.data import load_snapshot
    from training_jobs.pipeline.models import load_model_and_processor

    dataset, _ = load_snapshot(snapshot)
    test = dataset["test"]
    model, processor = load_model_and_processor(base_path)
    t0 = time.monotonic()
    hyps = evaluate.transcribe(model, processor, [np.asarray(a, dtype=np.float32) for a in test["audio"]])
    Path(os.environ["FINETUNE_BASE_HYPS"]).write_text(json.dumps(hyps))
    rates = evaluate.error_rates(list(test["text"]), hyps)
    return {"steps": 0, "features_s": 0.0, "steps_s": 0.0, "train_wall_s": 0.0, "eval_s": time.monotonic() - t0,
            "base_wer": rates["wer"], "new_wer": rates["wer"], "base_cer": rates["cer"], "new_cer": rates["cer"],
            "trainable_parameters": 0}


def _wer_hf_features(model, processor, test) -> float:
    import torch

    from training_jobs.pipeline import evaluate

    hyps = []
    with torch.inference_mode():
        for s in range(0, len(test), 8):
            audio = [list(a) for a in test["audio"][s : s + 8]]
            feats = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
            ids = model.generate(input_features=feats, num_beams=1, do_sample=False)
            hyps += [t.strip() for t in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return evaluate.error_rates(list(test["text"]), hyps)["wer"]


def child(name: str, args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    kind, overrides, _ = CONFIGS[name]
    workdir = Path(args.workdir) / name
    workdir.mkdir(parents=True, exist_ok=True)
    run = {"recipe": run_recipe, "ours": run_ours, "cached": run_cached, "base": run_base}[kind]
    t0 = time.monotonic()
    result = run(overrides, args, Path(args.snapshot), Path(args.base_path), workdir)
    result.update(name=name, kind=kind, overrides=overrides, total_s=time.monotonic() - t0,
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    (workdir / "result.json").write_text(json.dumps(result, indent=2))


# ------------------------------------------------------------------------------------------------
# the parent: prepare once, run each configuration in a child, print a table
# ------------------------------------------------------------------------------------------------

def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(results: list[dict]) -> str:
    lines = ["| Config | Steps | Train wall (s) | of which features (s) | Train CPU (s) | Test WER base → new | "
             "CER new | Peak RSS (MB) | Load before/after |",
             "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in results:
        cpu = f"{r['train_cpu_s']:.0f}" if r.get("train_cpu_s") is not None else "—"
        lines.append(f"| {r['name']} | {r['steps']} | {r['train_wall_s']:.0f} | {r['features_s']:.0f} | {cpu} | "
                     f"{100 * r['base_wer']:.1f}% → {100 * r['new_wer']:.1f}% | {100 * r['new_cer']:.1f}% | "
                     f"{r['peak_rss_mb']:.0f} | {r['load_before']:.1f} / {r['load_after']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder with dev_s2s.db and dev_truth.jsonl")
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--list", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--snapshot", help=argparse.SUPPRESS)
    p.add_argument("--base-path", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.list:
        for name, (_, _, desc) in CONFIGS.items():
            print(f"{name:16} {desc}")
        return
    if args.child:
        child(args.child, args)
        return

    from training_jobs.pipeline.models import default_base_model, resolve_base_model

    out = Path(args.out)
    data_dir = Path(args.data)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    workdir = out / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = build_snapshot(data_dir / "dev_s2s.db", data_dir / "dev_truth.jsonl", out / "snapshot", args.seed)
    build_snapshot(data_dir / "dev_s2s.db", data_dir / "dev_truth.jsonl", out / "snapshot-train-only", args.seed,
                   only=("train",))
    os.environ["FINETUNE_BASE_HYPS"] = str(workdir / "base_hyps.json")
    configs = ["base"] + [c for c in args.configs if c != "base"]
    cached_base = out / "base_result.json"
    if cached_base.is_file() and (out / "base_hyps.json").is_file():  # deterministic: reuse across invocations
        (workdir / "base_hyps.json").write_text((out / "base_hyps.json").read_text())
        configs.remove("base")
    base_path = resolve_base_model(default_base_model(), out / "cache")
    print(f"snapshot: {manifest['counts']}; base: {base_path}", flush=True)
    results = [json.loads(cached_base.read_text())] if "base" not in configs else []
    for name in configs:
        load_before = os.getloadavg()[0]
        t0 = time.monotonic()
        cmd = [sys.executable, __file__, "--child", name, "--snapshot", str(out / "snapshot"),
               "--base-path", str(base_path), "--workdir", str(workdir), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--seed", str(args.seed)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name} failed:\n{proc.stderr[-3000:]}", flush=True)
            if name == "base":
                raise SystemExit("the base model could not be scored")
            continue
        result = json.loads((workdir / name / "result.json").read_text())
        result.update(load_before=load_before, load_after=os.getloadavg()[0], wall_s=time.monotonic() - t0)
        if name == "base":
            cached_base.write_text(json.dumps(result, indent=2))
            (out / "base_hyps.json").write_text((workdir / "base_hyps.json").read_text())
        results.append(result)
        summary = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                   "steps": args.steps, "batch_size": args.batch_size, "threads": args.threads,
                   "snapshot_counts": manifest["counts"], "excluded": manifest["excluded"], "results": results}
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2))  # after each run: partial results survive
        print(f"{name}: train wall {result['train_wall_s']:.0f} s (features {result['features_s']:.0f} s), "
              f"WER {100 * result['base_wer']:.1f}% -> {100 * result['new_wer']:.1f}%, "
              f"peak RSS {result['peak_rss_mb']:.0f} MB, load {load_before:.1f}->{result['load_after']:.1f}",
              flush=True)
    print()
    print(f"{summary['date']} · {summary['machine']} · {args.steps} steps × batch {args.batch_size}")
    print(table(results))
    print(f"\nfull results: {workdir / 'summary.json'}")


if __name__ == "__main__":
    main()
