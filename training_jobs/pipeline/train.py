"""Fine-tune Whisper on a data snapshot. Reads top to bottom, like nanoGPT's train.py:

 1. set up: validate the config, seed, pick device and precision
 2. load the snapshot (the only data input) and the base model
 3. check the run fits in memory; freeze the encoder / add LoRA / gradient checkpointing
 4. features: log-mel once per training item (augmented copies included), labels per clip
 5. optimizer (AdamW) and linear warm-up/decay schedule; accelerate for device + mixed precision
 6. resume from the latest checkpoint, if any
 7. the loop: micro-batches, gradient accumulation, evaluation, early stopping, checkpoints,
    pause/stop between optimizer steps, a Progress event per step
 8. final evaluation of base vs new on the test split
 9. save model + metadata, curves, reports

Everything that decides the result (data order, augmentation, RNG) comes from the seed and the
checkpoint, so a run resumed after a kill ends with the same weights as one that never stopped.
There is no DataLoader (and `num_workers` is unused): features are computed once before the loop,
so a batch is a numpy stack, nothing a worker process would speed up.
"""
from __future__ import annotations

import math
import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from .augment import TrainItem, expand_training_set
from .checkpoint import (
    BEST_FILE,
    PREFIX,
    TrainState,
    latest_checkpoint,
    load_best,
    load_checkpoint,
    save_best,
    save_checkpoint,
)
from .config import TrainConfig
from .data import load_snapshot, split_rows
from .features import log_mel
from .memory import check_fits
from .progress import Progress, ProgressCallback, RunControl, RunStopped, noop
from .report import git_revision, package_versions, write_training_report

MAX_GRAD_NORM = 1.0
LOSS_MIN_DELTA = 0.001  # a validation loss must fall by 0.1% to break a WER tie
EVAL_BATCH_SIZE = 8
FEATURE_CACHE_BYTES = 4 * 2**30  # 80 x 3000 float32 = 0.94 MB a clip: about 4,400 clips


class TrainingError(RuntimeError):
    """The run cannot start or continue (no training clips, no GPU for fp16, ...)."""


@dataclass
class TrainResult:
    status: str  # "completed" or "early_stopped"
    metrics: dict
    model_dir: Path
    report_paths: dict[str, Path]
    trained_clip_ids: list[int]  # train + validation: the clips to mark is_trained = 1
    history: list[dict] = field(default_factory=list)
    snapshot_hash: str = ""


# --------------------------------------------------------------------------------------------
# small helpers the steps below use
# --------------------------------------------------------------------------------------------

def resolve_device(spec: str) -> str:
    spec = (spec or "auto").strip()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {spec!r} requested but no CUDA GPU is available; use --device cpu")
    if spec != "cpu" and not spec.startswith("cuda"):
        raise TrainingError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
    return spec


def resolve_precision(precision: str, device: str) -> str:
    on_gpu = device.startswith("cuda")
    if precision == "auto":
        if not on_gpu:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and not on_gpu:
        raise TrainingError("fp16 training needs a GPU; use fp32 (or bf16) on the CPU")
    return precision


def _make_accelerator(device: str, precision: str):
    """A fresh Accelerator. Its state is process-global, and a Celery worker trains many runs."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    if device.startswith("cuda:"):
        torch.cuda.set_device(int(device.split(":", 1)[1]))
    mixed = {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}[precision]
    return Accelerator(cpu=device == "cpu", mixed_precision=mixed)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_order(seed: int, epoch: int, n: int) -> list[int]:
    """The shuffled item order of one epoch: a pure function of (seed, epoch), so resumable."""
    return np.random.default_rng([seed, epoch]).permutation(n).tolist()


def label_ids(tokenizer, text: str, decoder_start_token_id: int) -> list[int]:
    """Token ids the decoder must produce. The model prepends the start token itself when it
    shifts labels right, so a leading <|startoftranscript|> is dropped here."""
    ids = tokenizer(text).input_ids
    return ids[1:] if ids and ids[0] == decoder_start_token_id else ids


class FeatureCache:
    """Log-mel features per item, computed once. They only change when the audio does, and
    augmented copies are fixed before training, so the whole run reuses them. Past
    `budget_bytes` the rest are recomputed per batch instead (about 10 ms a clip, small next to a
    training step) so a large data set cannot exhaust RAM."""

    def __init__(self, samples: list[np.ndarray], n_mels: int, *, budget_bytes: int = FEATURE_CACHE_BYTES,
                 on_item=None):
        self.samples, self.n_mels = samples, n_mels
        per_item = n_mels * 3000 * 4
        self.cached: list[np.ndarray | None] = [None] * len(samples)
        for i in range(min(len(samples), budget_bytes // per_item)):
            self.cached[i] = log_mel(samples[i], n_mels=n_mels)
            if on_item is not None:
                on_item(i + 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, indices) -> np.ndarray:
        return np.stack([
            self.cached[i] if self.cached[i] is not None else log_mel(self.samples[i], n_mels=self.n_mels)
            for i in indices
        ])


def collate(indices, features, labels: list[list[int]]) -> dict[str, torch.Tensor]:
    """Stack features; pad labels only to this batch's longest, with -100 (ignored by the loss)."""
    longest = max(len(labels[i]) for i in indices)
    padded = torch.full((len(indices), longest), -100, dtype=torch.long)
    for row, i in enumerate(indices):
        padded[row, : len(labels[i])] = torch.tensor(labels[i], dtype=torch.long)
    return {"input_features": torch.from_numpy(features[indices]), "labels": padded}


def gpu_memory_mb(device: str) -> float | None:
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return None


def _lora(model, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    lora_config = LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.05,
                             target_modules=["q_proj", "v_proj"], bias="none")
    return get_peft_model(model, lora_config)


def _is_multilingual(model) -> bool:
    return model.config.vocab_size >= 51865  # Whisper's own rule: .en vocabularies are one shorter


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

def train(
    config: TrainConfig,
    snapshot_dir: str | Path,
    output_dir: str | Path,
    *,
    checkpoint_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    on_progress: ProgressCallback = noop,
    control: RunControl | None = None,
    keep_checkpoints: bool = False,
) -> TrainResult:
    from transformers import get_linear_schedule_with_warmup

    from . import evaluate, export, models

    # 1. set up -------------------------------------------------------------------------------
    config.validate()
    timings: dict[str, float] = {}
    t_start = time.monotonic()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else output_dir / "checkpoints"
    cache_dir = Path(cache_dir) if cache_dir else output_dir.parent / "cache"
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    seed_everything(config.seed)

    # 2. data snapshot and base model ---------------------------------------------------------
    on_progress(Progress("loading", message="loading data snapshot"))
    dataset, manifest = load_snapshot(snapshot_dir)
    snapshot_hash = manifest["snapshot_hash"]
    if len(dataset["train"]) == 0:
        raise TrainingError("the snapshot has no training clips: review more clips or lower val/test splits")
    on_progress(Progress("loading", message="loading base model"))
    base_path = models.resolve_base_model(config.base_model, cache_dir)
    model, processor = models.load_model_and_processor(base_path, "cpu", torch.float32)
    tokenizer = processor.tokenizer
    if _is_multilingual(model):
        tokenizer.set_prefix_tokens(language=config.language, task="transcribe", predict_timestamps=False)
    timings["load"] = time.monotonic() - t_start

    # 3. memory check and what to train -------------------------------------------------------
    check_fits(model.config, config.batch_size, precision, config.lora, config.freeze_encoder,
               config.gradient_checkpointing, device, lora_rank=config.lora_rank)
    model.config.use_cache = False
    if config.freeze_encoder:
        model.model.encoder.requires_grad_(False)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora:
        model = _lora(model, config)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    # 4. features, computed once (augmented copies are fixed, so they are cached too) -------------
    t0 = time.monotonic()
    train_rows, val_rows, test_rows = (split_rows(dataset[name]) for name in ("train", "validation", "test"))
    items: list[TrainItem] = expand_training_set(
        train_rows,
        speed=config.augment_speed, noise_snr_db=config.augment_noise_snr_db,
        normalize=config.augment_normalize, seed=config.seed,
    )
    n_mels = model.config.num_mel_bins
    start_id = model.config.decoder_start_token_id

    def feature_progress(done: int) -> None:
        if done % 50 == 0 or done == len(items):
            on_progress(Progress("loading", step=done, total=len(items), message="computing features"))

    train_features = FeatureCache([item.samples for item in items], n_mels, on_item=feature_progress)
    train_labels = [label_ids(tokenizer, item.text, start_id) for item in items]
    val_samples = [samples for _id, samples, _text in val_rows]
    val_texts = [text for _id, _samples, text in val_rows]
    val_features = FeatureCache(val_samples, n_mels) if val_samples else None
    val_labels = [label_ids(tokenizer, t, start_id) for t in val_texts]
    timings["features"] = time.monotonic() - t0

    # 5. optimizer, schedule, accelerate ------------------------------------------------------
    accelerator = _make_accelerator(device, precision)
    n_items, bs, accum = len(items), config.batch_size, config.grad_accum
    micro_per_epoch = math.ceil(n_items / bs)
    steps_per_epoch = math.ceil(micro_per_epoch / accum)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    run_device = str(accelerator.device)

    # 6. resume -------------------------------------------------------------------------------
    state = TrainState()
    resumed_from = latest_checkpoint(checkpoint_dir)
    if resumed_from is not None:
        state = load_checkpoint(resumed_from, model=accelerator.unwrap_model(model), optimizer=optimizer,
                                scheduler=scheduler, scaler=accelerator.scaler, snapshot_hash=snapshot_hash,
                                config=config.to_dict())
        on_progress(Progress("loading", step=state.global_step, total=total_steps,
                             message=f"resumed from {resumed_from.name}"))

    def checkpoint() -> Path:
        return save_checkpoint(checkpoint_dir, model=accelerator.unwrap_model(model), optimizer=optimizer,
                               scheduler=scheduler, scaler=accelerator.scaler, state=state,
                               config=config.to_dict(), snapshot_hash=snapshot_hash)

    def validate() -> dict | None:
        """Validation loss (teacher forcing) and WER (greedy decoding); None without a validation split."""
        if val_features is None:
            return None
        model.eval()
        losses = []
        with torch.no_grad(), accelerator.autocast():
            for start in range(0, len(val_labels), EVAL_BATCH_SIZE):
                idx = list(range(start, min(start + EVAL_BATCH_SIZE, len(val_labels))))
                batch = {k: v.to(accelerator.device) for k, v in collate(idx, val_features, val_labels).items()}
                losses.append(float(model(**batch).loss) * len(idx))
        hyps = evaluate.transcribe(accelerator.unwrap_model(model), processor, val_samples,
                                   batch_size=EVAL_BATCH_SIZE, device=run_device, language=config.language)
        model.train()
        wer = evaluate.error_rates(val_texts, hyps, config.language)["wer"]
        return {"val_loss": sum(losses) / len(val_labels), "wer": wer}

    def evaluate_and_maybe_stop() -> bool:
        """Record a validation point; True when early stopping says enough."""
        result = validate()
        if result is None:
            return False
        state.history.append({"step": state.global_step, "epoch": state.epoch, **result})
        # Better WER, or the same WER at a clearly lower loss (small validation sets tie on WER a lot).
        if state.best_wer is None or result["wer"] < state.best_wer - 1e-9 or (
                abs(result["wer"] - state.best_wer) <= 1e-9
                and result["val_loss"] < state.best_val_loss * (1 - LOSS_MIN_DELTA)):
            state.best_wer, state.best_val_loss = result["wer"], result["val_loss"]
            state.best_step, state.evals_without_improvement = state.global_step, 0
            save_best(checkpoint_dir, accelerator.unwrap_model(model))
        else:
            state.evals_without_improvement += 1
        on_progress(Progress("training", step=state.global_step, total=total_steps, epoch=state.epoch,
                             val_loss=result["val_loss"], wer=result["wer"],
                             message=f"validation WER {result['wer']:.1%} (best {state.best_wer:.1%})"))
        patience = config.early_stopping_patience
        return bool(patience and state.evals_without_improvement >= patience)

    # 7. the loop -----------------------------------------------------------------------------
    model.train()
    t_loop, steps_this_session = time.monotonic(), 0
    elapsed_before = state.elapsed_s
    done = state.global_step >= total_steps or state.stopped_early
    while not done and state.epoch < config.epochs:
        if not state.order:
            state.order = epoch_order(config.seed, state.epoch, n_items)
        while state.batch_index < micro_per_epoch:
            group_start = (state.batch_index // accum) * accum
            if state.batch_index == group_start:  # between optimizer steps: honour pause and stop
                if control is not None:
                    control.wait_while_paused()
                    if control.should_stop():
                        state.elapsed_s = elapsed_before + time.monotonic() - t_loop
                        path = checkpoint()
                        raise RunStopped(f"stopped at step {state.global_step}; checkpoint {path}")
                t_step, step_losses, step_samples = time.monotonic(), [], 0
            group_len = min(accum, micro_per_epoch - group_start)
            idx = state.order[state.batch_index * bs : (state.batch_index + 1) * bs]
            batch = {k: v.to(accelerator.device) for k, v in collate(idx, train_features, train_labels).items()}
            with accelerator.autocast():
                loss = model(**batch).loss
            accelerator.backward(loss / group_len)
            step_losses.append(float(loss.detach()))
            step_samples += len(idx)
            state.batch_index += 1
            if state.batch_index - group_start < group_len:
                continue  # keep accumulating
            accelerator.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.global_step += 1
            steps_this_session += 1
            train_loss = sum(step_losses) / len(step_losses)
            lr = scheduler.get_last_lr()[0]
            state.history.append({"step": state.global_step, "epoch": state.epoch, "train_loss": train_loss,
                                  "learning_rate": lr})
            now = time.monotonic()
            per_step = (now - t_loop) / steps_this_session
            on_progress(Progress(
                "training", step=state.global_step, total=total_steps,
                epoch=round(state.epoch + state.batch_index / micro_per_epoch, 3), train_loss=train_loss,
                learning_rate=lr, samples_per_s=step_samples / max(now - t_step, 1e-9),
                gpu_memory_mb=gpu_memory_mb(run_device), eta_s=per_step * (total_steps - state.global_step),
            ))
            stop_early = bool(config.eval_every and state.global_step % config.eval_every == 0
                              and evaluate_and_maybe_stop())
            state.stopped_early = stop_early
            if state.global_step % config.checkpoint_every == 0:
                state.elapsed_s = elapsed_before + time.monotonic() - t_loop
                checkpoint()
            if stop_early or state.global_step >= total_steps:
                done = True
                break
        else:  # the epoch ran to its end
            state.epoch, state.batch_index, state.order = state.epoch + 1, 0, []
            if not config.eval_every and evaluate_and_maybe_stop():
                state.stopped_early = done = True
    if not state.stopped_early and not any("wer" in h and h["step"] == state.global_step for h in state.history):
        # The step limit ended the run between evaluations: judge the final weights too, or the
        # best-weights rule below would throw the last stretch of training away unseen.
        evaluate_and_maybe_stop()  # its early-stopping verdict is moot: training is over
    state.elapsed_s = elapsed_before + time.monotonic() - t_loop
    checkpoint()  # a crash during evaluation or export resumes straight to step 8
    timings["training"] = state.elapsed_s
    optimizer.state.clear()  # AdamW's moments are twice the model: free them before loading the base model
    accelerator.free_memory()

    # 8. final evaluation: base vs new on the test split ----------------------------------------
    t0 = time.monotonic()
    on_progress(Progress("evaluating", step=state.global_step, total=total_steps, message="testing base vs new"))
    new_model = accelerator.unwrap_model(model)
    if state.best_wer is not None:
        load_best(checkpoint_dir, new_model)  # early stopping keeps the best validation weights
    if config.lora:
        new_model = new_model.merge_and_unload()
    new_model.config.use_cache = True
    metrics = {"steps": state.global_step, "best_val_wer": state.best_wer, "best_step": state.best_step,
               "test_clips": len(test_rows), "base_wer": None, "base_cer": None, "new_wer": None,
               "new_cer": None, "trainable_parameters": n_trainable}
    report_paths: dict[str, Path] = {}
    if test_rows:
        test_ids, test_samples, test_texts = (list(column) for column in zip(*test_rows, strict=True))
        new_hyps = evaluate.transcribe(new_model, processor, test_samples, batch_size=EVAL_BATCH_SIZE,
                                       device=run_device, language=config.language)
        base_model, _ = models.load_model_and_processor(base_path, run_device, torch.float32)
        base_hyps = evaluate.transcribe(base_model, processor, test_samples, batch_size=EVAL_BATCH_SIZE,
                                        device=run_device, language=config.language)
        del base_model
        comparison = evaluate.compare(test_texts, base_hyps, new_hyps, test_ids, config.language)
        metrics.update(base_wer=comparison.base["wer"], base_cer=comparison.base["cer"],
                       new_wer=comparison.new["wer"], new_cer=comparison.new["cer"],
                       relative_wer_change=comparison.relative_wer_change)
        report_paths["eval_json"], report_paths["eval_md"] = evaluate.write_report(comparison, output_dir)
    timings["evaluation"] = time.monotonic() - t0

    # 9. save model, metadata, curves, reports ------------------------------------------------
    on_progress(Progress("exporting", step=state.global_step, total=total_steps, message="saving model"))
    status = "early_stopped" if state.stopped_early else "completed"
    trained_clip_ids = sorted(clip_id for clip_id, _samples, _text in train_rows + val_rows)
    timings["wall_this_session"] = time.monotonic() - t_start
    metadata = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": status,
        "base_model": config.base_model or models.default_base_model(),
        "base_model_path": str(base_path),
        "snapshot_hash": snapshot_hash,
        "clip_ids": {name: [row[0] for row in manifest["splits"][name]] for name in ("train", "validation", "test")},
        "config": config.to_dict(),
        "device": run_device,
        "precision": precision,
        "metrics": metrics,
        "timings": timings,
        "versions": package_versions(),
        "git_revision": git_revision(),
        "resumed_from": resumed_from.name if resumed_from else None,
    }
    model_dir = export.save_model(new_model, processor, output_dir / "model", metadata)
    report_paths["curves"] = export.plot_curves(state.history, output_dir / "curves.png")
    report_paths["summary_json"], report_paths["report_md"] = write_training_report(output_dir, {
        **metadata,
        "data": {"snapshot_hash": snapshot_hash, "counts": {k: manifest["counts"][k] for k in ("train", "validation", "test")},
                 "excluded": manifest["excluded"], "train_items": n_items},
        "history": state.history,
    })
    if not keep_checkpoints:
        for path in [*checkpoint_dir.glob(f"{PREFIX}*"), checkpoint_dir / BEST_FILE]:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    on_progress(Progress("done", step=state.global_step, total=total_steps, message=status))
    return TrainResult(status, metrics, model_dir, report_paths, trained_clip_ids, state.history, snapshot_hash)
