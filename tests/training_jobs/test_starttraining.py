"""`manage.py starttraining`: options from TrainConfig, a foreground run on a real capture file,
Ctrl-C + --resume, clips marked trained only on success, and --enqueue onto the Celery backbone."""
import json
import os
import signal
import sqlite3
import threading
import time
from dataclasses import fields
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import tone
from tests.pipeline.training_fixtures import SENTENCES, capture_db, one_torch_thread, tiny_whisper_fixture  # noqa: F401
from training_jobs.management.commands.starttraining import Command
from training_jobs.pipeline.config import TrainConfig
from training_jobs.pipeline.data import split_for


def parse(*argv):
    return vars(Command().create_parser("manage.py", "starttraining").parse_args(list(argv)))


def flags(path):
    conn = sqlite3.connect(path)
    rows = dict(conn.execute("SELECT id, is_trained FROM s2s_training_data").fetchall())
    conn.close()
    return rows


@pytest.fixture
def capture(tmp_path):
    """10 reviewed clips and 2 unreviewed ones, in the live app's schema."""
    rows = [(SENTENCES[i], tone(1.0, freq=150 + 25 * i), 1, 0) for i in range(10)]
    rows += [("not reviewed", tone(1.0), 0, 0), ("nor this", tone(1.0, freq=300), 0, 0)]
    return capture_db(tmp_path / "s2s.db", rows)


@pytest.fixture
def artifacts(tmp_path, settings):
    settings.S2S_ARTIFACTS = tmp_path / "artifacts"
    return settings.S2S_ARTIFACTS


def test_every_config_field_is_an_option_with_its_help():
    parser = Command().create_parser("manage.py", "starttraining")
    help_text = " ".join(parser.format_help().split())
    for f in fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in parser._option_string_actions
        assert " ".join(f.metadata["help"].split())[:40] in help_text
    opts = parse("--lr", "3e-5", "--batch-size", "4", "--lora", "--no-freeze-encoder", "--precision", "bf16")
    assert (opts["learning_rate"], opts["batch_size"], opts["lora"], opts["freeze_encoder"]) == (3e-5, 4, True, False)
    assert opts["epochs"] is None  # not given: TrainConfig's default applies
    with pytest.raises(CommandError, match="invalid choice: 'fp8'"):
        parse("--precision", "fp8")


def test_an_out_of_range_value_is_a_clear_error(capture, artifacts):
    with pytest.raises(CommandError, match="batch_size must be at least 1"):
        call_command("starttraining", "--batch-size", "0", "--database", str(capture))


def test_a_database_without_reviewed_clips_is_a_clear_error(tmp_path, artifacts, tiny_whisper):
    empty = capture_db(tmp_path / "empty.db", [("unreviewed", tone(1.0), 0, 0)])
    with pytest.raises(CommandError, match="no reviewed clips"):
        call_command("starttraining", "--database", str(empty), "--base-model", str(tiny_whisper))


def test_a_foreground_run_trains_reports_and_marks_only_train_and_validation_clips(capture, artifacts, tiny_whisper,
                                                                                     tmp_path):
    out, err = StringIO(), StringIO()
    call_command("starttraining", "--database", str(capture), "--base-model", str(tiny_whisper), "--epochs", "1",
                 "--batch-size", "4", "--lr", "1e-3", "--val-split", "0.2", "--test-split", "0.2",
                 "--output", str(tmp_path / "run"), stdout=out, stderr=err)
    text = out.getvalue()
    assert "Training completed" in text and "test WER" in text and "Snapshot" in text
    assert "training" in err.getvalue()  # the tqdm bar
    expected = {i: int(split_for(i, 0.2, 0.2) != "test") for i in range(1, 11)} | {11: 0, 12: 0}
    assert flags(capture) == expected
    assert 0 in list(expected.values())[:10]  # some test clips really stayed untrained
    backups = list((artifacts / "backups").glob("*.db"))
    assert len(backups) == 1 and set(flags(backups[0]).values()) == {0}
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "snapshot" / "manifest.json").is_file()


def test_no_mark_trained_leaves_the_database_alone(capture, artifacts, tiny_whisper, tmp_path):
    call_command("starttraining", "--database", str(capture), "--base-model", str(tiny_whisper), "--epochs", "1",
                 "--batch-size", "8", "--test-split", "0", "--val-split", "0", "--no-mark-trained", "--no-progress",
                 "--output", str(tmp_path / "run"), stdout=StringIO())
    assert set(flags(capture).values()) == {0}
    assert not (artifacts / "backups").exists()


def test_ctrl_c_stops_with_a_checkpoint_and_resume_finishes_the_run(capture, artifacts, tiny_whisper, tmp_path):
    run_dir = tmp_path / "run"

    def interrupt_after_first_checkpoint():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((run_dir / "checkpoints").glob("step-*")):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_after_first_checkpoint, daemon=True).start()
    out = StringIO()
    call_command("starttraining", "--database", str(capture), "--base-model", str(tiny_whisper), "--epochs", "20",
                 "--max-steps", "12", "--batch-size", "2", "--checkpoint-every", "1", "--val-split", "0",
                 "--test-split", "0", "--no-progress", "--output", str(run_dir), stdout=out)
    assert "Continue with: manage.py starttraining --resume" in out.getvalue()
    assert set(flags(capture).values()) == {0}  # a stopped run marks nothing

    out = StringIO()
    call_command("starttraining", "--resume", str(run_dir), "--database", str(capture), "--no-progress", stdout=out)
    meta = json.loads((run_dir / "model" / "s2s_metadata.json").read_text())
    assert meta["resumed_from"].startswith("step-") and meta["metrics"]["steps"] == 12
    assert meta["config"]["max_steps"] == 12
    assert "Marked 10 clips" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_enqueue_hands_the_run_to_the_celery_backbone(training_env, capture):
    from s2s_trainer.celery import app as celery_app
    from training_jobs.models import TrainingRun

    out = StringIO()
    try:
        call_command("starttraining", "--enqueue", "--lr", "3e-5", "--epochs", "2", stdout=out)
        run = TrainingRun.objects.get()
        assert run.config["learning_rate"] == 3e-5 and run.config["epochs"] == 2
        assert f"Queued training run {run.pk}" in out.getvalue()
    finally:
        celery_app.control.purge()  # no worker in this test: leave no task behind for another one
