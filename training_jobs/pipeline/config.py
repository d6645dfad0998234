"""`TrainConfig`: one dataclass feeds the dashboard form, the REST serializer, the
`starttraining` options and the checkpoint. Every field has a default and a `help`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any


def opt(default, help: str, **extra):
    """A dataclass field with a default and help text (shown by forms, --help and the API schema)."""
    return field(default=default, metadata={"help": help, **extra})


PRESETS = ["tiny.en", "base.en", "small.en", "distil-small.en", "medium.en", "tiny", "base", "small", "medium"]


@dataclass
class TrainConfig:
    base_model: str = opt("", "Base model: a preset (tiny.en, base.en, small.en, distil-small.en, medium.en, "
                          "or multilingual tiny/base/small/medium), a hub id, a transformers directory or a "
                          "faster-whisper (CTranslate2) directory. Empty: S2S_BASE_MODEL, else the bundled tiny.en.")
    language: str = opt("en", "Language for multilingual models (ISO code).")
    learning_rate: float = opt(1e-5, "Peak learning rate for AdamW.", min=1e-8, max=1e-2)
    batch_size: int = opt(16, "Clips per batch.", min=1, max=512)
    grad_accum: int = opt(1, "Gradient accumulation steps (effective batch = batch_size x grad_accum).", min=1, max=64)
    epochs: int = opt(20, "Maximum epochs; early stopping usually ends sooner.", min=1, max=1000)
    max_steps: int = opt(0, "Stop after this many optimizer steps (0: no limit).", min=0)
    warmup_ratio: float = opt(0.1, "Share of steps spent warming the learning rate up.", min=0.0, max=0.5)
    weight_decay: float = opt(0.0, "AdamW weight decay.", min=0.0, max=1.0)
    val_split: float = opt(0.1, "Share of clips held out for validation.", min=0.0, max=0.5)
    test_split: float = opt(0.1, "Share of clips held out for the final base-vs-new test.", min=0.0, max=0.5)
    early_stopping_patience: int = opt(3, "Stop after this many evaluations without a better validation WER (0: off).", min=0)
    eval_every: int = opt(0, "Validate every N optimizer steps (0: once per epoch).", min=0)
    checkpoint_every: int = opt(50, "Write a resumable checkpoint every N optimizer steps.", min=1)
    precision: str = opt("auto", "auto (bf16/fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16.",
                         choices=["auto", "fp32", "fp16", "bf16"])
    device: str = opt("auto", "auto, cpu, cuda or cuda:N.")
    gradient_checkpointing: bool = opt(False, "Trade compute for memory on large models.")
    freeze_encoder: bool = opt(False, "Train the decoder only (fast, good for small data sets).")
    lora: bool = opt(False, "Train LoRA adapters (peft) instead of all weights; merged on export.")
    lora_rank: int = opt(16, "LoRA rank.", min=1, max=256)
    only_untrained: bool = opt(False, "Use only reviewed clips never trained on before.")
    augment_speed: bool = opt(False, "Speed perturbation 0.9x/1.1x on the training split.")
    augment_noise_snr_db: float = opt(0.0, "Add noise at this SNR to training copies (0: off).", min=0.0, max=60.0)
    augment_normalize: bool = opt(False, "Normalize training clip volume.")
    seed: int = opt(42, "Random seed (data order, augmentation, init of new weights).")
    num_workers: int = opt(0, "DataLoader worker processes.", min=0, max=32)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping, rejecting unknown keys with a clear message."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**data)

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the field when a value is out of range."""
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if "min" in meta and value < meta["min"]:
                raise ValueError(f"{f.name} must be at least {meta['min']} (got {value})")
            if "max" in meta and value > meta["max"]:
                raise ValueError(f"{f.name} must be at most {meta['max']} (got {value})")
            if "choices" in meta and value not in meta["choices"]:
                raise ValueError(f"{f.name} must be one of {', '.join(meta['choices'])} (got {value!r})")
        if self.val_split + self.test_split >= 0.9:
            raise ValueError("val_split + test_split must leave at least 10% of clips for training")
        return self
