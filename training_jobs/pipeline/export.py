"""Save a fine-tuned model, draw its curves, and convert it for faster-whisper.

Two artefacts per run: a transformers directory (to train further or inspect) and a CTranslate2
directory the live app loads with faster-whisper. The conversion runs offline from the local
directory. transformers 5 saves the processor as `processor_config.json`, but CTranslate2's
converter and faster-whisper read `preprocessor_config.json` (number of mel bins: 80, or 128 for
large-v3), so it is written explicitly (see the ct2-whisper-format note).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

METADATA_FILE = "s2s_metadata.json"
QUANTIZATIONS = ("int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")


class ExportError(RuntimeError):
    """The model could not be saved or converted; the message says which step failed."""


def _write_preprocessor_config(out_dir: Path, n_mels: int) -> None:
    from transformers import WhisperFeatureExtractor

    WhisperFeatureExtractor(feature_size=n_mels).save_pretrained(out_dir)


def save_model(model, processor, out_dir, metadata: dict) -> Path:
    """transformers directory: safetensors weights, config, generation config, tokenizer, processor,
    preprocessor_config.json and s2s_metadata.json (config, data snapshot, versions...)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):  # peft LoRA: ship plain Whisper weights
        model = model.merge_and_unload()
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    feature_extractor = getattr(processor, "feature_extractor", None)
    if feature_extractor is not None:
        feature_extractor.save_pretrained(out_dir)
    if not (out_dir / "preprocessor_config.json").is_file():
        _write_preprocessor_config(out_dir, model.config.num_mel_bins)
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str, ensure_ascii=False),
                                         encoding="utf-8")
    return out_dir


def plot_curves(history: list[dict], path) -> Path:
    """PNG with train/val loss (left) and validation WER (right) against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def series(key):
        pts = [(h["step"], h[key]) for h in history if h.get(key) is not None and h.get("step") is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, (ax_loss, ax_wer) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for key, label, style in (("train_loss", "train loss", "-"), ("val_loss", "validation loss", "o-")):
        xs, ys = series(key)
        if xs:
            ax_loss.plot(xs, ys, style, label=label, markersize=3)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Loss")
    if ax_loss.lines:
        ax_loss.legend()
    xs, ys = series("wer")
    if xs:
        ax_wer.plot(xs, [100 * y for y in ys], "o-", color="tab:green", markersize=3)
    ax_wer.set_xlabel("step")
    ax_wer.set_ylabel("WER (%)")
    ax_wer.set_title("Validation WER")
    for ax in (ax_loss, ax_wer):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def export_ct2(model_dir, out_dir, quantization: str = "int8") -> Path:
    """Convert a transformers Whisper directory into a faster-whisper one (offline).

    Writes into a temporary sibling and renames it into place, so a failed conversion never leaves a
    half-written model where the live app could pick it up.
    """
    from ctranslate2.converters import TransformersConverter

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}; use one of {', '.join(QUANTIZATIONS)}")
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir} is not a transformers model directory (no config.json)")
    if not (model_dir / "tokenizer.json").is_file():
        raise ExportError(f"{model_dir} has no tokenizer.json; faster-whisper needs it")
    if not (model_dir / "preprocessor_config.json").is_file():
        n_mels = json.loads((model_dir / "config.json").read_text()).get("num_mel_bins", 80)
        _write_preprocessor_config(model_dir, n_mels)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        converter = TransformersConverter(str(model_dir), copy_files=["tokenizer.json", "preprocessor_config.json"])
        try:
            converter.convert(str(tmp), quantization=quantization, force=True)
        except Exception as e:
            raise ExportError(f"CTranslate2 conversion of {model_dir} failed: {e}") from e
        if (model_dir / METADATA_FILE).is_file():
            shutil.copyfile(model_dir / METADATA_FILE, tmp / METADATA_FILE)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
