"""Training-split augmentation: speed perturbation, additive noise, volume normalization.

Augmented copies are made once, before training, from a seed and the clip id (never from a
global random stream): the set of training items, and hence the cached features and the data
order, are the same on every run and after a resume. Validation and test clips are never touched.

- speed: Kaldi-style 0.9x and 1.1x copies next to the original (tempo and pitch change together,
  as in the classic recipe), made by resampling with librosa.
- noise: one extra copy of each original with white noise at `snr_db` relative to the clip's
  own power.
- normalize: every training item (originals and copies) scaled to a common RMS level, with the
  peak kept below full scale.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from review.audio import SAMPLE_RATE

SPEED_FACTORS = (0.9, 1.1)
TARGET_RMS_DBFS = -20.0


@dataclass(frozen=True)
class TrainItem:
    """One training example: a clip, or an augmented copy of it (`variant` says which)."""

    clip_id: int
    variant: str  # "orig", "speed0.9", "speed1.1", "noise20"
    samples: np.ndarray
    text: str

    @property
    def key(self) -> str:
        return f"{self.clip_id}:{self.variant}"


def speed_perturb(samples: np.ndarray, factor: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Play `factor` times faster: resample to sr/factor and read back at sr."""
    import librosa

    if factor <= 0:
        raise ValueError(f"speed factor must be positive (got {factor})")
    if factor == 1.0:
        return np.asarray(samples, dtype=np.float32).copy()
    out = librosa.resample(
        np.asarray(samples, dtype=np.float32), orig_sr=sample_rate, target_sr=int(round(sample_rate / factor)),
        res_type="soxr_hq",
    )
    return out.astype(np.float32)


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise scaled so signal power / noise power = `snr_db`."""
    x = np.asarray(samples, dtype=np.float32)
    power = float(np.mean(np.square(x, dtype=np.float64)))
    if power <= 0:
        return x.copy()
    noise_power = power / (10 ** (snr_db / 10))
    noise = rng.standard_normal(len(x)) * np.sqrt(noise_power)
    return np.clip(x + noise, -1.0, 1.0).astype(np.float32)


def normalize_volume(samples: np.ndarray, target_dbfs: float = TARGET_RMS_DBFS, max_peak: float = 0.98) -> np.ndarray:
    """Scale to `target_dbfs` RMS, reduced if that would push the peak past `max_peak`."""
    x = np.asarray(samples, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    if rms <= 1e-8:
        return x.copy()
    gain = 10 ** (target_dbfs / 20) / rms
    peak = float(np.max(np.abs(x)))
    if peak * gain > max_peak:
        gain = max_peak / peak
    return (x * gain).astype(np.float32)


def _rng_for(seed: int, clip_id: int, variant: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{clip_id}:{variant}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def expand_training_set(
    clips: list[tuple[int, np.ndarray, str]], *, speed: bool, noise_snr_db: float, normalize: bool, seed: int
) -> list[TrainItem]:
    """(clip_id, samples, text) of the training split -> originals plus augmented copies."""
    items: list[TrainItem] = []
    for clip_id, samples, text in clips:
        samples = np.asarray(samples, dtype=np.float32)
        group = [TrainItem(clip_id, "orig", samples, text)]
        if speed:
            group += [TrainItem(clip_id, f"speed{f:g}", speed_perturb(samples, f), text) for f in SPEED_FACTORS]
        if noise_snr_db > 0:
            variant = f"noise{noise_snr_db:g}"
            group.append(TrainItem(clip_id, variant, add_noise(samples, noise_snr_db, _rng_for(seed, clip_id, variant)), text))
        if normalize:
            group = [TrainItem(i.clip_id, i.variant, normalize_volume(i.samples), i.text) for i in group]
        items += group
    return items
