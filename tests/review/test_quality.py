"""Each quality check fires on the clip it describes and stays quiet on a clean one.

Clips are real audio: espeak-ng speech captured like a microphone would (lead-in silence, gain,
a low noise floor), then made silent, clipped, noisy, quiet or cut short.
"""
import numpy as np
import pytest

from review.audio import SAMPLE_RATE, measure
from review.quality import CHECKS, audio_findings, clip_findings, repeated_ngram, transcript_findings
from review.speech import espeak_path, synthesize_espeak

SENTENCE = "Please restart the database server before the meeting tomorrow morning."

pytestmark = pytest.mark.skipif(espeak_path() is None, reason="espeak-ng is required for real speech clips")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """A clean capture: 0.2 s lead-in, speech at a -6 dBFS peak, a faint noise floor."""
    rng = np.random.default_rng(1)
    voice = synthesize_espeak(SENTENCE)
    x = np.concatenate([np.zeros(3200, np.float32), voice, np.zeros(4800, np.float32)])
    x = 0.5 * x / np.max(np.abs(x))
    return (x + 10 ** (-60 / 20) * rng.standard_normal(len(x))).astype(np.float32)


def codes(findings) -> set[str]:
    return {f.code for f in findings}


def test_clean_speech_raises_no_audio_warning(speech):
    assert audio_findings(measure(speech)) == []


def test_silence_is_flagged_and_nothing_else(speech):
    rng = np.random.default_rng(2)
    silence = (10 ** (-70 / 20) * rng.standard_normal(len(speech))).astype(np.float32)
    assert codes(audio_findings(measure(silence))) == {"silence"}


def test_clipped_speech_is_flagged_as_clipping(speech):
    clipped = np.clip(speech * 8, -1.0, 1.0)
    found = codes(audio_findings(measure(clipped)))
    assert "clipping" in found
    assert "silence" not in found and "low_snr" not in found


def test_noisy_speech_is_flagged_as_low_snr(speech):
    rng = np.random.default_rng(3)
    noise_rms = np.sqrt(np.mean(speech**2)) / 10 ** (3 / 20)  # about 3 dB SNR
    noisy = speech + noise_rms * rng.standard_normal(len(speech)).astype(np.float32)
    found = codes(audio_findings(measure(noisy)))
    assert found == {"low_snr"}


def test_quiet_speech_is_flagged_as_too_quiet_not_silent(speech):
    found = codes(audio_findings(measure(speech * 0.05)))  # peak about -32 dBFS
    assert "too_quiet" in found and "silence" not in found


def test_a_word_in_a_long_pause_is_mostly_silence(speech):
    word = speech[: SAMPLE_RATE // 2 + 3200]
    padded = np.concatenate([np.zeros(SAMPLE_RATE * 3, np.float32), word, np.zeros(SAMPLE_RATE * 2, np.float32)])
    assert "mostly_silence" in codes(audio_findings(measure(padded)))
    assert "mostly_silence" not in codes(audio_findings(measure(speech)))


def test_a_tenth_of_a_second_is_too_short(speech):
    assert "too_short" in codes(audio_findings(measure(speech[3200:4800])))


def test_right_transcript_of_real_speech_passes_every_check(speech):
    assert clip_findings(measure(speech), SENTENCE, None) == []


@pytest.mark.parametrize("text", ["", "   \n\t", None])
def test_empty_or_whitespace_transcript(text, speech):
    assert codes(transcript_findings(text, len(speech) / SAMPLE_RATE)) == {"empty_text"}


def test_too_few_words_for_the_duration(speech):
    duration = len(speech) / SAMPLE_RATE
    assert duration > 3
    assert codes(transcript_findings("Please.", duration)) == {"too_few_words"}
    assert codes(transcript_findings(SENTENCE, duration)) == set()


def test_too_many_words_for_the_duration():
    text = " ".join(["word"] * 10) + " and more words spoken here"
    assert "too_many_words" in codes(transcript_findings("one two three four five six seven eight", 1.0))
    assert "too_many_words" not in codes(transcript_findings("one two three four five", 2.0))
    assert "too_many_words" not in codes(transcript_findings(text, 6.0))


@pytest.mark.parametrize("text", [
    "Thank you.", "Thanks for watching!", "Subtitles by the Amara.org community",
    "Thank you for watching.", "Please like and subscribe.", "Subtitles by Steve",
])
def test_known_whisper_hallucinations(text):
    assert "hallucination" in codes(transcript_findings(text, 2.0))


@pytest.mark.parametrize("text", [
    "Thank you for the report, it was useful.", "The subtitles were out of sync.", "Bye for now, see you Monday.",
    "Okay.", "Bye!",
])
def test_sentences_that_merely_contain_those_words_are_not_hallucinations(text):
    assert "hallucination" not in codes(transcript_findings(text, 3.0))


def test_repeated_ngram_loop():
    assert "repetition" in codes(transcript_findings("I went to the I went to the I went to the I went to the shop", 5.0))
    assert repeated_ngram("the the the the end".split()) == ("the", 4)
    assert "repetition" not in codes(transcript_findings("that that is is fine, very very good", 4.0))


@pytest.mark.parametrize("text", ["[Music]", "(upbeat music)", "♪ ♪", "[BLANK_AUDIO]", "*applause* [laughter]"])
def test_non_speech_only_text(text):
    assert "non_speech" in codes(transcript_findings(text, 2.0))


def test_speech_with_a_tag_is_not_non_speech():
    assert "non_speech" not in codes(transcript_findings("[laughs] okay, let's start the meeting", 3.0))


def test_characters_outside_the_latin_script():
    found = transcript_findings("Please call Дмитрий about the 東京 office", 3.0)
    assert "foreign_script" in codes(found)
    assert "Д" in next(f.message for f in found if f.code == "foreign_script")
    assert "foreign_script" not in codes(transcript_findings("Anneliese and Jürgen visit Óbidos, café at 5€", 3.0))


def test_every_code_is_known_and_has_a_title():
    assert all(c.kind in ("audio", "transcript") and c.title for c in CHECKS.values())
    assert {"clipping", "silence", "low_snr", "empty_text", "hallucination", "repetition", "non_speech",
            "foreign_script", "too_few_words", "too_many_words"} <= set(CHECKS)


def test_word_edits_ignore_case_and_punctuation_and_count_real_changes():
    from review.confidence import word_disagreement, word_edits

    assert word_edits("Turn on the lights.", "turn on the lights") == 0
    assert word_edits("turn of the lights", "Turn off the lights, please.") == 2
    assert word_disagreement("a b c d", "a x c d") == 0.25
    assert word_disagreement("", "") == 0.0 and word_disagreement(None, "hello") == 1.0
