"""Log-mel features exactly as faster-whisper computes them at inference.

The fine-tuned model is served by faster-whisper, so it must be trained and evaluated on the very
features faster-whisper feeds its encoder, not on those of transformers' `WhisperFeatureExtractor`.
They differ in two ways (see docs and `tests/pipeline/test_features.py`):

- faster-whisper pads the waveform by only 160 samples before the STFT and then pads the *mel
  frames* with zeros up to 3000; transformers pads the *waveform* with silence up to 30 s first.
  The padded tail is therefore 0.0 here and about -0.5..-0.8 (log of silence) there, and the
  "max - 8" dynamic-range clamp is taken over a different set of frames.
- faster-whisper's `transcribe` drops the last frame of the clip (`content_frames = frames - 1`)
  before padding to 3000.

On real speech this changes greedy output on about a quarter of clips (ct2-whisper-format note),
so we replicate faster-whisper's arithmetic here (float32 window, complex64 STFT, Slaney mel
filters) and test equality against its own `FeatureExtractor` plus `pad_or_trim`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_FRAMES = 3000  # 30 s of 10 ms frames: what the Whisper encoder expects
N_SAMPLES = N_FRAMES * HOP_LENGTH


class FeatureError(ValueError):
    """The samples cannot be turned into Whisper features (wrong shape, empty, non-finite)."""


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Slaney-normalised mel filter bank (n_mels, N_FFT//2 + 1), same formula as faster-whisper/librosa."""
    fftfreqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / SAMPLE_RATE)
    mels = np.linspace(0.0, 45.245640471924965, n_mels + 2)  # mel(0 Hz) .. mel(8 kHz)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    fdiff = np.diff(freqs)
    ramps = freqs.reshape(-1, 1) - fftfreqs.reshape(1, -1)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2 : n_mels + 2] - freqs[:n_mels]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    w = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    w.setflags(write=False)
    return w


def _check(samples) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise FeatureError(f"expected mono samples (1-D), got shape {samples.shape}")
    if samples.size == 0:
        raise FeatureError("no samples")
    samples = samples.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        raise FeatureError("samples contain NaN or infinity")
    return samples


def log_mel(samples: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Encoder input (n_mels, 3000) float32 for one 16 kHz clip, as faster-whisper's first window.

    Clips longer than 30 s are cut to their first 30 s (training clips are shorter than that; the
    caller decides what to do with long ones).
    """
    samples = _check(samples)
    # faster-whisper's FeatureExtractor(padding=160): pad, centre-pad (reflect) n_fft//2, frame.
    x = np.pad(samples, (0, HOP_LENGTH))
    x = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
    n_frames = 1 + (x.size - N_FFT) // HOP_LENGTH
    frames = np.lib.stride_tricks.as_strided(
        x, (n_frames, N_FFT), (HOP_LENGTH * x.strides[0], x.strides[0]), writeable=False
    )
    stft = np.fft.rfft(frames * _window(), n=N_FFT, axis=-1).astype(np.complex64)
    magnitudes = np.abs(stft[:-1].T) ** 2  # (freq, frames - 1): faster-whisper drops the last STFT frame
    mel = mel_filters(n_mels) @ magnitudes
    log_spec = np.log10(np.clip(mel, a_min=1e-10, a_max=None))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    # transcribe(): content_frames = frames - 1, segment = features[:, :min(3000, content)], pad_or_trim.
    content = min(N_FRAMES, log_spec.shape[1] - 1)
    out = np.zeros((n_mels, N_FRAMES), dtype=np.float32)
    out[:, :content] = log_spec[:, :content]
    return out


def log_mel_batch(samples_list, n_mels: int = 80) -> np.ndarray:
    """(B, n_mels, 3000) float32: `log_mel` of each clip (the clamp is per clip, so no shared padding)."""
    if len(samples_list) == 0:
        return np.zeros((0, n_mels, N_FRAMES), dtype=np.float32)
    out = np.empty((len(samples_list), n_mels, N_FRAMES), dtype=np.float32)
    for i, samples in enumerate(samples_list):
        out[i] = log_mel(samples, n_mels=n_mels)
    return out
