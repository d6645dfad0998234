"""Django-free audio helpers: turn a stored blob into samples and measure it.

The live app stores each utterance as zlib-compressed little-endian int16 PCM at 16 kHz mono.
Everything here takes bytes or numpy arrays so the training pipeline can use it too.
"""
from __future__ import annotations

import io
import zlib
from dataclasses import asdict, dataclass

import numpy as np

SAMPLE_RATE = 16_000
DEFAULT_MAX_SECONDS = 600.0
CLIP_LEVEL = 32767 / 32768 - 1e-4  # a sample at (or beyond) this |value| counts as clipped


class ClipDecodeError(ValueError):
    """The stored audio blob cannot be turned into samples."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def decode_pcm(blob: bytes | memoryview | None, *, max_seconds: float = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """Decompress a blob into int16 samples, raising ClipDecodeError with a code for each fault."""
    if blob is None:
        raise ClipDecodeError("audio_blob is NULL", "null_blob")
    blob = bytes(blob)
    if not blob:
        raise ClipDecodeError("audio_blob is empty", "empty_blob")
    max_bytes = int(max_seconds * SAMPLE_RATE * 2)
    try:
        # Bounded decompression: a hostile or absurd blob cannot exhaust memory.
        inflater = zlib.decompressobj()
        pcm = inflater.decompress(blob, max_bytes + 2)
        if inflater.unconsumed_tail:
            raise ClipDecodeError(
                f"audio is longer than {max_seconds:g} s (limit S2S_MAX_CLIP_SECONDS)", "too_long"
            )
        pcm += inflater.flush()
    except zlib.error as e:
        raise ClipDecodeError(f"audio_blob is not zlib data ({e})", "not_zlib") from None
    if not inflater.eof:
        raise ClipDecodeError("audio_blob is truncated zlib data", "truncated")
    if len(pcm) > max_bytes:
        raise ClipDecodeError(f"audio is longer than {max_seconds:g} s (limit S2S_MAX_CLIP_SECONDS)", "too_long")
    if not pcm:
        raise ClipDecodeError("audio_blob decompresses to no samples", "no_samples")
    if len(pcm) % 2:
        raise ClipDecodeError(f"PCM has an odd byte count ({len(pcm)}): not int16 samples", "odd_length")
    return np.frombuffer(pcm, dtype="<i2")


def decode_clip(blob: bytes | memoryview | None, *, max_seconds: float = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """Blob -> float32 samples in [-1, 1) at 16 kHz."""
    return decode_pcm(blob, max_seconds=max_seconds).astype(np.float32) / 32768.0


def encode_clip(samples: np.ndarray, *, level: int = 6) -> bytes:
    """float32 [-1, 1] or int16 samples -> the live app's blob (zlib of little-endian int16)."""
    if samples.dtype != np.int16:
        samples = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")
    return zlib.compress(samples.astype("<i2").tobytes(), level)


def duration_seconds(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    return len(samples) / float(sample_rate)


def pcm_to_wav(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """int16 samples -> a 16-bit PCM WAV file in memory (header written by hand: 44 bytes, exact)."""
    data = np.asarray(pcm, dtype="<i2").tobytes()
    header = b"".join([
        b"RIFF", (36 + len(data)).to_bytes(4, "little"), b"WAVE",
        b"fmt ", (16).to_bytes(4, "little"), (1).to_bytes(2, "little"), (1).to_bytes(2, "little"),
        sample_rate.to_bytes(4, "little"), (sample_rate * 2).to_bytes(4, "little"),
        (2).to_bytes(2, "little"), (16).to_bytes(2, "little"),
        b"data", len(data).to_bytes(4, "little"),
    ])
    return header + data


def encode_audio(samples: np.ndarray, fmt: str, sample_rate: int = SAMPLE_RATE) -> bytes:
    """float32 samples -> bytes in `fmt` (wav, flac, ogg, mp3) through libsndfile."""
    import soundfile as sf

    formats = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}
    if fmt not in formats:
        raise ValueError(f"unknown audio format {fmt!r}; choose one of {', '.join(formats)}")
    container, subtype = formats[fmt]
    if container not in sf.available_formats() or subtype not in sf.available_subtypes(container):
        raise ValueError(f"this libsndfile cannot write {fmt}")
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format=container, subtype=subtype)
    return buf.getvalue()


def compute_peaks(samples: np.ndarray, width: int) -> list[list[float]]:
    """Min/max per bucket for a waveform `width` buckets wide: [[min, max], ...] in [-1, 1]."""
    width = max(1, int(width))
    if len(samples) == 0:
        return [[0.0, 0.0]] * width
    edges = np.linspace(0, len(samples), width + 1).astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        chunk = samples[a:max(b, a + 1)]
        out.append([round(float(chunk.min()), 4), round(float(chunk.max()), 4)])
    return out


def _dbfs(value: float) -> float:
    return float(20 * np.log10(max(value, 1e-10)))


@dataclass(frozen=True)
class AudioMetrics:
    duration_s: float
    rms_dbfs: float
    peak_dbfs: float
    clipping_ratio: float
    silence_ratio: float
    snr_db: float

    def as_dict(self) -> dict:
        return {k: round(v, 4) for k, v in asdict(self).items()}

    def warnings(self) -> list[str]:
        """Quality problems a reviewer should see next to the player."""
        out = []
        if self.clipping_ratio > 0.001:
            out.append(f"clipping: {self.clipping_ratio:.1%} of samples at full scale")
        if self.silence_ratio > 0.9 or self.rms_dbfs < -55:
            out.append("silence: almost no speech energy")
        elif self.snr_db < 10:
            out.append(f"low SNR: about {self.snr_db:.0f} dB")
        return out


def measure(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, frame_ms: float = 25.0) -> AudioMetrics:
    """Loudness, clipping, silence and an SNR estimate from frame energies.

    SNR is estimated as the ratio of loud-frame energy (90th percentile) to quiet-frame energy
    (10th percentile): rough, but it needs no reference and flags noisy captures well.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.size == 0:
        return AudioMetrics(0.0, -200.0, -200.0, 0.0, 1.0, 0.0)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    peak = float(np.max(np.abs(x)))
    clipping = float(np.mean(np.abs(x) >= CLIP_LEVEL))
    frame = max(1, int(sample_rate * frame_ms / 1000))
    n = len(x) // frame
    if n == 0:
        frames_db = np.array([_dbfs(rms)])
    else:
        frames = x[: n * frame].reshape(n, frame).astype(np.float64)
        frames_db = 10 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-20))
    silence = float(np.mean(frames_db < -50))
    loud, quiet = np.percentile(frames_db, 90), np.percentile(frames_db, 10)
    snr = float(max(0.0, min(loud - quiet, 100.0)))
    return AudioMetrics(duration_seconds(x, sample_rate), _dbfs(rms), _dbfs(peak), clipping, silence, snr)
