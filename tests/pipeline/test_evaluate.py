"""Scoring base vs fine-tuned: Whisper normalization, WER/CER, batched greedy transcripts, the report."""
import json

import pytest

from tests.pipeline import whisper_fixtures
from training_jobs.pipeline.evaluate import compare, error_rates, normalize, transcribe, write_report

# Shared real-speech / real-model fixtures (cached once per session).
faster_whisper_tiny = whisper_fixtures.faster_whisper_tiny
reference_transcripts = whisper_fixtures.reference_transcripts
speech_clips = whisper_fixtures.speech_clips
tiny_ct2_dir = whisper_fixtures.tiny_ct2_dir
tiny_hf_dir = whisper_fixtures.tiny_hf_dir
tiny_model = whisper_fixtures.tiny_model


def test_english_normalization_ignores_case_punctuation_spelling_and_fillers():
    assert normalize("I'd like the colour grey, Mr. Smith!") == "i would like the color gray mister smith"
    assert normalize("Um, meet at seven PM?") == normalize("meet at 7 PM.") == "meet at 7 pm"
    assert normalize(None) == ""


def test_other_languages_use_the_basic_normalizer():
    assert normalize("Ça va très bien, Mr. X!", language="fr") == "ça va très bien mr x"


def test_error_rates_count_edits_over_reference_words_after_normalization():
    assert error_rates(["the cat sat"], ["the cat sat down"])["wer"] == pytest.approx(1 / 3)
    assert error_rates(["Hello, World!"], ["hello world"]) == {"wer": 0.0, "cer": 0.0, "n": 1}
    # corpus rate: 1 error over 5 reference words, not the mean of per-clip rates (0.5 and 0)
    assert error_rates(["a b", "c d e"], ["a x", "c d e"])["wer"] == pytest.approx(1 / 5)
    assert error_rates(["one two"], [""])["wer"] == 1.0
    assert error_rates([""], ["hello"])["wer"] == 1.0  # an empty reference: every word is an insertion
    assert error_rates(["abc"], ["abd"])["cer"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_rates(["a", "b"], ["a"])


@pytest.mark.slow
def test_transcribe_is_greedy_batched_and_matches_faster_whisper(tiny_model, speech_clips, reference_transcripts):
    model, processor = tiny_model
    clips = [s for _, s in speech_clips]
    in_threes = transcribe(model, processor, clips, batch_size=3)
    assert in_threes == [t.strip() for t in reference_transcripts]
    assert not model.training  # left as found
    model.train()
    try:
        assert transcribe(model, processor, clips[:2], batch_size=8) == in_threes[:2]
        assert model.training
    finally:
        model.eval()
    # the tiny model is decent on clean synthetic speech: far from random text
    assert error_rates([t for t, _ in speech_clips], in_threes)["wer"] < 0.5


def test_report_lists_regressions_first_and_escapes_text(tmp_path):
    refs = ["the cat sat", "hello world", "<script>alert(1)</script> | pipe", "same"]
    base = ["the cat sat", "hello word", "script alert 1 script pipe", "same"]
    new = ["the bat sat", "hello world", "<script>alert(1)</script> | pipe", "same"]
    report = compare(refs, base, new, [11, 12, 13, 14])
    assert report.base["wer"] == pytest.approx(4 / 8)  # "<script>" and "(1)" are dropped by the normalizer
    assert report.new["wer"] == pytest.approx(1 / 8)
    assert report.relative_wer_change == pytest.approx(-3 / 4)
    json_path, md_path = write_report(report, tmp_path / "eval")

    data = json.loads(json_path.read_text())
    assert [c["id"] for c in data["clips"]] == [11, 12, 13, 14]
    assert data["clips"][0] == {"id": 11, "reference": "the cat sat", "base": "the cat sat", "new": "the bat sat",
                                "base_wer": 0.0, "new_wer": pytest.approx(1 / 3), "delta_wer": pytest.approx(1 / 3)}
    assert data["base"]["n"] == 4 and data["relative_wer_change"] == pytest.approx(-3 / 4)

    md = md_path.read_text()
    assert "| WER | 50.0% | 12.5% | -75.0% |" in md
    assert md.index("## Regressions (1)") < md.index("| 11 |") < md.index("## Improvements (2)") < md.index("| 12 |")
    assert md.index("| 12 |") < md.index("## Unchanged (1)") < md.index("| 14 |")
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\| pipe" in md  # a pipe in a transcript cannot break the table
    for line in md.splitlines():
        if line.startswith("| 13 |"):
            assert line.count(" | ") == 5  # still six cells


def test_compare_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        compare(["a"], ["a"], ["a", "b"], [1])
