"""Saving a fine-tuned model, its curves, and the faster-whisper round trip."""
import json

import pytest
import torch
from safetensors.torch import load_file

from tests.pipeline import whisper_fixtures
from tests.pipeline.whisper_fixtures import fw_transcribe
from training_jobs.pipeline.evaluate import error_rates
from training_jobs.pipeline.export import ExportError, export_ct2, plot_curves, save_model
from training_jobs.pipeline.models import load_model_and_processor

# Shared real-speech / real-model fixtures (cached once per session).
faster_whisper_tiny = whisper_fixtures.faster_whisper_tiny
reference_transcripts = whisper_fixtures.reference_transcripts
speech_clips = whisper_fixtures.speech_clips
tiny_ct2_dir = whisper_fixtures.tiny_ct2_dir
tiny_hf_dir = whisper_fixtures.tiny_hf_dir
tiny_model = whisper_fixtures.tiny_model


@pytest.fixture(scope="module")
def saved_dir(tiny_model, tmp_path_factory):
    model, processor = tiny_model
    return save_model(model, processor, tmp_path_factory.mktemp("saved"),
                      {"run": 7, "config": {"learning_rate": 1e-4}, "clip_ids": {"test": [1, 2]}})


def test_save_writes_a_complete_reloadable_transformers_directory(saved_dir, tiny_model):
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json", "preprocessor_config.json", "processor_config.json", "s2s_metadata.json"):
        assert (saved_dir / name).is_file(), name
    assert json.loads((saved_dir / "s2s_metadata.json").read_text())["clip_ids"] == {"test": [1, 2]}
    assert json.loads((saved_dir / "preprocessor_config.json").read_text())["feature_size"] == 80
    model, _ = tiny_model
    weights = load_file(saved_dir / "model.safetensors")
    torch.testing.assert_close(weights["model.decoder.layers.0.fc1.weight"],
                               model.state_dict()["model.decoder.layers.0.fc1.weight"])
    reloaded, processor = load_model_and_processor(saved_dir)
    assert processor.tokenizer.pad_token == "<|endoftext|>"
    assert reloaded.generation_config.no_timestamps_token_id == 50362
    assert reloaded.generation_config.suppress_tokens == model.generation_config.suppress_tokens


@pytest.mark.slow
def test_round_trip_to_faster_whisper_keeps_the_transcripts(saved_dir, tmp_path, speech_clips, reference_transcripts):
    """imported tiny.en -> save -> CTranslate2 -> faster-whisper gives the original's greedy text.

    float32 must equal the original exactly (proof the weights and settings survive). int8, what
    ships, rounds every weight: measured here it changes one word group on one of three clips
    (its scales are computed from float32 here, from float16 when faster-whisper quantizes the
    bundled model at load time), so it is held to "nearly the same", not "identical"."""
    from faster_whisper import WhisperModel

    clips = [s for _, s in speech_clips[:3]]
    expected = reference_transcripts[:3]
    got = {}
    for quantization in ("float32", "int8"):
        out = export_ct2(saved_dir, tmp_path / f"ct2-{quantization}", quantization=quantization)
        for name in ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json", "s2s_metadata.json"):
            assert (out / name).is_file(), name
        config = json.loads((out / "config.json").read_text())
        assert config["suppress_ids_begin"] == [220, 50256] and len(config["suppress_ids"]) == 90
        fw = WhisperModel(str(out), device="cpu", compute_type=quantization, cpu_threads=2)
        got[quantization] = [fw_transcribe(fw, c) for c in clips]
    assert got["float32"] == expected
    assert sum(a == b for a, b in zip(got["int8"], expected, strict=True)) >= 2
    assert error_rates(expected, got["int8"])["wer"] <= 0.25
    assert (tmp_path / "ct2-int8" / "model.bin").stat().st_size < 0.5 * (tmp_path / "ct2-float32" / "model.bin").stat().st_size
    assert not list(tmp_path.glob(".ct2-*"))  # no temporary directories left behind


def test_export_refuses_bad_input_without_leaving_a_partial_model(tmp_path, saved_dir):
    with pytest.raises(ExportError, match="unknown quantization 'int3'"):
        export_ct2(saved_dir, tmp_path / "out", quantization="int3")
    with pytest.raises(ExportError, match="not a transformers model directory"):
        export_ct2(tmp_path, tmp_path / "out")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ExportError, match="no tokenizer.json"):
        export_ct2(tmp_path / "half", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_curves_are_a_png_even_with_gaps(tmp_path):
    history = [
        {"step": 1, "train_loss": 2.0},
        {"step": 2, "train_loss": 1.5, "val_loss": 1.7, "wer": 0.30},
        {"step": 3, "train_loss": 1.1, "val_loss": None, "wer": None},
        {"step": 4, "train_loss": 0.9, "val_loss": 1.2, "wer": 0.12},
    ]
    path = plot_curves(history, tmp_path / "plots" / "curves.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert plot_curves([], tmp_path / "empty.png").read_bytes()[:4] == b"\x89PNG"
