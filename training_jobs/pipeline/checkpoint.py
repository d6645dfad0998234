"""Resumable checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint holds the trainable weights (all of them, the decoder's, or the LoRA adapters':
whatever is frozen is reloaded from the base model, bit for bit), the optimizer and scheduler
state, the grad scaler, the Python/numpy/torch RNG states and the data position (epoch, next
batch index and that epoch's shuffled order), plus the early-stopping state and history.

Each checkpoint is written to a temporary directory and renamed into place, so a run killed
mid-write leaves the previous checkpoint intact; `latest_checkpoint` ignores partial ones.
"""
from __future__ import annotations

import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

PREFIX = "step-"
STATE_FILE = "state.pt"
BEST_FILE = "best-weights.pt"
KEEP = 2
# Settings that may differ between the run that wrote a checkpoint and the one resuming it.
RESUMABLE_CHANGES = {"device", "num_workers", "precision"}


@dataclass
class TrainState:
    """Where the loop is. `batch_index` is the next micro-batch to run in `epoch`'s `order`."""

    epoch: int = 0
    batch_index: int = 0
    global_step: int = 0
    order: list[int] = field(default_factory=list)
    best_wer: float | None = None
    best_val_loss: float | None = None
    best_step: int = 0
    evals_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The parameters that change in training (tied weights appear once, under their first name)."""
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, weights: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [name for name in weights if name not in params]
    if missing:
        raise ValueError(f"checkpoint does not match the model: unknown parameters {missing[:3]}...")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(checkpoint_dir: str | Path, *, model, optimizer, scheduler, scaler, state: TrainState,
                    config: dict, snapshot_hash: str) -> Path:
    """Write step-<N>/state.pt atomically and keep only the newest few checkpoints."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"{PREFIX}{state.global_step:07d}"
    tmp = checkpoint_dir / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save({
        "weights": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_states(),
        "state": asdict(state),
        "config": config,
        "snapshot_hash": snapshot_hash,
    }, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(checkpoint_dir.glob(f"{PREFIX}*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(checkpoint_dir: str | Path | None) -> Path | None:
    if checkpoint_dir is None or not Path(checkpoint_dir).is_dir():
        return None
    done = [p for p in sorted(Path(checkpoint_dir).glob(f"{PREFIX}*")) if (p / STATE_FILE).is_file()]
    return done[-1] if done else None


def load_checkpoint(path: str | Path, *, model, optimizer, scheduler, scaler, snapshot_hash: str,
                    config: dict | None = None) -> TrainState:
    """Restore everything in place and return the loop position. Refuses the checkpoint of other
    data or of other training settings: resuming it would silently train something else."""
    blob = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=False)
    if blob["snapshot_hash"] != snapshot_hash:
        raise ValueError(
            f"checkpoint {path} belongs to snapshot {blob['snapshot_hash']}, not {snapshot_hash}: "
            "use a fresh checkpoint directory for new data"
        )
    if config is not None:
        changed = sorted(k for k in config.keys() | blob["config"].keys()
                         if k not in RESUMABLE_CHANGES and config.get(k) != blob["config"].get(k))
        if changed:
            raise ValueError(f"checkpoint {path} was written with other settings ({', '.join(changed)}): "
                             "resume with the same configuration or use a fresh checkpoint directory")
    load_trainable_state(model, blob["weights"])
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    if scaler is not None and blob["scaler"] is not None:
        scaler.load_state_dict(blob["scaler"])
    restore_rng_states(blob["rng"])
    return TrainState(**blob["state"])


def save_best(checkpoint_dir: str | Path, model) -> Path:
    """Keep the weights of the best validation WER so far (survives a resume)."""
    path = Path(checkpoint_dir) / BEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(trainable_state(model), tmp)
    tmp.replace(path)
    return path


def load_best(checkpoint_dir: str | Path, model) -> bool:
    path = Path(checkpoint_dir) / BEST_FILE
    if not path.is_file():
        return False
    load_trainable_state(model, torch.load(path, map_location="cpu", weights_only=True))
    return True
