"""Augmentation of the training split: speed, noise, volume; reproducible from the seed."""
import numpy as np
import pytest

from training_jobs.pipeline.augment import add_noise, expand_training_set, normalize_volume, speed_perturb

SR = 16000


def sine(freq=440.0, seconds=1.0, amp=0.3):
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x):
    spectrum = np.abs(np.fft.rfft(x))
    return np.fft.rfftfreq(len(x), 1 / SR)[int(np.argmax(spectrum))]


def db(x):
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_length_and_pitch_together(factor):
    out = speed_perturb(sine(), factor)
    assert out.dtype == np.float32
    assert len(out) == pytest.approx(SR / factor, rel=0.002)
    assert peak_hz(out) == pytest.approx(440 * factor, abs=2)


def test_noise_is_added_at_the_requested_snr():
    x = sine()
    noisy = add_noise(x, 20.0, np.random.default_rng(0))
    assert db(x) - db(noisy - x) == pytest.approx(20.0, abs=0.3)


def test_volume_normalization_reaches_the_target_without_clipping():
    quiet = sine(amp=0.01)
    assert 10 * np.log10(np.mean(normalize_volume(quiet) ** 2)) == pytest.approx(-20.0, abs=0.1)
    spiky = sine(amp=0.01)
    spiky[100] = 0.9
    assert np.max(np.abs(normalize_volume(spiky))) <= 0.98 + 1e-6


def test_expansion_adds_copies_reproducibly_and_keeps_the_originals():
    clips = [(1, sine(300), "one"), (2, sine(500), "two")]
    items = expand_training_set(clips, speed=True, noise_snr_db=15, normalize=False, seed=7)
    assert [i.key for i in items] == ["1:orig", "1:speed0.9", "1:speed1.1", "1:noise15",
                                      "2:orig", "2:speed0.9", "2:speed1.1", "2:noise15"]
    assert np.array_equal(items[0].samples, clips[0][1])
    assert all(i.text == ("one" if i.clip_id == 1 else "two") for i in items)
    again = expand_training_set(clips, speed=True, noise_snr_db=15, normalize=False, seed=7)
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(items, again, strict=True))
    other_seed = expand_training_set(clips, speed=False, noise_snr_db=15, normalize=False, seed=8)
    assert not np.array_equal(other_seed[1].samples, items[3].samples)


def test_without_options_nothing_changes_and_normalize_touches_every_item():
    clips = [(1, sine(amp=0.05), "one")]
    plain = expand_training_set(clips, speed=False, noise_snr_db=0, normalize=False, seed=0)
    assert len(plain) == 1 and np.array_equal(plain[0].samples, clips[0][1])
    normed = expand_training_set(clips, speed=True, noise_snr_db=0, normalize=True, seed=0)
    assert len(normed) == 3
    for item in normed:
        assert 10 * np.log10(np.mean(item.samples.astype(np.float64) ** 2)) == pytest.approx(-20, abs=0.2)
