"""The model trains and is scored on exactly the features faster-whisper feeds it in production."""
import numpy as np
import pytest
from faster_whisper.audio import pad_or_trim
from faster_whisper.feature_extractor import FeatureExtractor

from tests.pipeline import whisper_fixtures
from training_jobs.pipeline.features import FeatureError, log_mel, log_mel_batch, mel_filters

# Shared real-speech / real-model fixtures (cached once per session).
faster_whisper_tiny = whisper_fixtures.faster_whisper_tiny
speech_clips = whisper_fixtures.speech_clips
tiny_ct2_dir = whisper_fixtures.tiny_ct2_dir


def faster_whisper_window(samples, n_mels=80):
    """What WhisperModel.transcribe hands the encoder for the first 30 s window."""
    features = FeatureExtractor(feature_size=n_mels)(samples)
    content_frames = features.shape[-1] - 1
    return pad_or_trim(features[:, : min(3000, content_frames)])


def test_it_equals_faster_whisper_feature_extractor_on_real_speech(speech_clips):
    for _, samples in speech_clips[:4]:
        ours = log_mel(samples)
        assert ours.shape == (80, 3000) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, faster_whisper_window(samples), rtol=0, atol=1e-6)


def test_it_equals_what_faster_whisper_transcribe_feeds_the_encoder(speech_clips, faster_whisper_tiny, monkeypatch):
    seen = []
    real_encode = type(faster_whisper_tiny).encode

    def spy(self, features):
        seen.append(np.array(features))
        return real_encode(self, features)

    monkeypatch.setattr(type(faster_whisper_tiny), "encode", spy)
    _, samples = speech_clips[1]
    segments, _ = faster_whisper_tiny.transcribe(samples, beam_size=1, without_timestamps=True,
                                                 condition_on_previous_text=False)
    list(segments)
    assert seen, "faster-whisper did not call encode"
    np.testing.assert_allclose(seen[0].reshape(80, 3000), log_mel(samples), rtol=0, atol=1e-6)


def test_it_differs_from_transformers_feature_extractor_in_the_padded_tail(speech_clips):
    """Recorded difference: transformers pads the waveform to 30 s before the STFT, so its tail is the
    log of silence and the clamp covers other frames; faster-whisper pads mel frames with 0.0."""
    from transformers import WhisperFeatureExtractor

    _, samples = speech_clips[0]
    theirs = WhisperFeatureExtractor(feature_size=80)(samples, sampling_rate=16000, return_tensors="np").input_features[0]
    ours = log_mel(samples)
    content = len(samples) // 160
    assert np.all(ours[:, content:] == 0.0)
    assert theirs[:, content + 5 :].max() < -0.1  # log-mel of digital silence, not zero
    assert np.abs(ours - theirs).max() > 0.5
    # In the speech part both agree closely (same STFT and mel bank), within the clamp's reach.
    np.testing.assert_allclose(ours[:, 10 : content - 10], theirs[:, 10 : content - 10], atol=2e-3)


def test_it_supports_128_mel_bins_like_large_v3():
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 0.1, 16000).astype(np.float32)
    ours = log_mel(samples, n_mels=128)
    assert ours.shape == (128, 3000)
    np.testing.assert_allclose(ours, faster_whisper_window(samples, n_mels=128), rtol=0, atol=1e-6)
    assert mel_filters(128).shape == (128, 201)


def test_it_keeps_only_the_first_30_seconds_of_a_long_clip():
    rng = np.random.default_rng(1)
    samples = rng.normal(0, 0.1, 16000 * 31).astype(np.float32)
    ours = log_mel(samples)
    assert ours.shape == (80, 3000)
    np.testing.assert_allclose(ours, faster_whisper_window(samples), rtol=0, atol=1e-6)


def test_batch_stacks_per_clip_features(speech_clips):
    clips = [s for _, s in speech_clips[:3]]
    batch = log_mel_batch(clips)
    assert batch.shape == (3, 80, 3000)
    for i, clip in enumerate(clips):
        np.testing.assert_array_equal(batch[i], log_mel(clip))
    assert log_mel_batch([]).shape == (0, 80, 3000)


def test_it_accepts_int_like_and_float64_input():
    samples = np.linspace(-0.5, 0.5, 8000)
    np.testing.assert_allclose(log_mel(samples), log_mel(samples.astype(np.float32)), atol=1e-6)


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros((2, 100), dtype=np.float32), "mono"),
        (np.zeros(0, dtype=np.float32), "no samples"),
        (np.array([0.0, np.nan, 0.1], dtype=np.float32), "NaN"),
    ],
)

def test_it_rejects_bad_samples_with_a_clear_error(samples, message):
    with pytest.raises(FeatureError, match=message):
        log_mel(samples)
