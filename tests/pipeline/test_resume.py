"""A run interrupted after a checkpoint, by a stop request or by SIGKILL, finishes with the same
weights as a run that never stopped (same seed, same snapshot)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.pipeline.training_fixtures import make_tiny_whisper, one_torch_thread, records  # noqa: F401
from training_jobs.pipeline.config import TrainConfig
from training_jobs.pipeline.data import prepare_snapshot
from training_jobs.pipeline.progress import LocalControl, RunStopped
from training_jobs.pipeline.train import train

ROOT = Path(__file__).resolve().parents[2]


def config_for(model_dir) -> TrainConfig:
    # Dropout, LoRA-free full training, noise augmentation, validation with early-stopping state
    # and an odd grad-accum tail: everything a resume must restore exactly.
    return TrainConfig(base_model=str(model_dir), batch_size=2, grad_accum=2, epochs=2, learning_rate=2e-3,
                       val_split=0.2, test_split=0.0, eval_every=3, early_stopping_patience=10,
                       checkpoint_every=2, augment_noise_snr_db=20, seed=11)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """One tiny model (with dropout), one snapshot, and the weights of a run that never stopped."""
    root = tmp_path_factory.mktemp("resume")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the tests and the killed subprocess: same arithmetic everywhere
    model_dir = make_tiny_whisper(root / "tiny", dropout=0.1)
    config = config_for(model_dir)
    snap = prepare_snapshot(records(8), config, root / "snap")
    straight = train(config, snap.path, root / "straight", checkpoint_dir=root / "ck-straight")
    yield config, snap, straight, final_weights(root / "straight")
    torch.set_num_threads(threads)


def final_weights(result_dir: Path) -> dict:
    return load_file(str(result_dir / "model" / "model.safetensors"))


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_stop_then_resume_equals_an_uninterrupted_run(scenario, tmp_path):
    config, snap, straight, straight_weights = scenario
    assert straight.metrics["steps"] == 8 and [h["step"] for h in straight.history if "wer" in h] == [3, 6, 8]
    control = LocalControl()

    def stop_after_step_3(event):
        if event.stage == "training" and event.step == 3 and event.train_loss is not None:
            control.stop()

    try:
        train(config, snap.path, tmp_path / "resumed", checkpoint_dir=tmp_path / "ck", control=control,
              on_progress=stop_after_step_3)
        raise AssertionError("the stop request was ignored")
    except RunStopped:
        pass
    assert (tmp_path / "ck" / "step-0000003").is_dir()
    resumed = train(config, snap.path, tmp_path / "resumed", checkpoint_dir=tmp_path / "ck")

    assert resumed.metrics["steps"] == straight.metrics["steps"]
    assert [h["step"] for h in resumed.history] == [h["step"] for h in straight.history]
    assert resumed.metrics["best_val_wer"] == straight.metrics["best_val_wer"]
    meta = json.loads((resumed.model_dir / "s2s_metadata.json").read_text())
    assert meta["resumed_from"] == "step-0000003"
    assert_same(straight_weights, final_weights(tmp_path / "resumed"))


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from training_jobs.pipeline.config import TrainConfig
    from training_jobs.pipeline.train import train
    config = TrainConfig.from_dict(__import__("json").loads(sys.argv[1]))
    def die_after_first_checkpoint(event):
        if event.stage == "training" and event.step == 3 and event.train_loss is not None:
            os.kill(os.getpid(), signal.SIGKILL)   # like the OOM killer or a pulled plug
    train(config, sys.argv[2], sys.argv[3], checkpoint_dir=sys.argv[4], on_progress=die_after_first_checkpoint)
""")


def test_a_run_killed_with_sigkill_resumes_from_its_checkpoint_to_the_same_weights(scenario, tmp_path):
    config, snap, _straight, straight_weights = scenario
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(config.to_dict()), str(snap.path), str(tmp_path / "killed"),
         str(tmp_path / "ck")], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (tmp_path / "ck" / "step-0000002" / "state.pt").is_file()
    assert not (tmp_path / "killed" / "model").exists()

    resumed = train(config, snap.path, tmp_path / "killed", checkpoint_dir=tmp_path / "ck")
    assert json.loads((resumed.model_dir / "s2s_metadata.json").read_text())["resumed_from"] == "step-0000002"
    assert_same(straight_weights, final_weights(tmp_path / "killed"))


def test_a_checkpoint_from_other_data_or_settings_is_refused(tmp_path):
    model_dir = make_tiny_whisper(tmp_path / "tiny")
    config = TrainConfig(base_model=str(model_dir), batch_size=2, epochs=1, val_split=0.0, test_split=0.0,
                         checkpoint_every=1)
    control = LocalControl()
    first = prepare_snapshot(records(4), config, tmp_path / "a")
    try:
        train(config, first.path, tmp_path / "o", checkpoint_dir=tmp_path / "ck", control=control,
              on_progress=lambda e: e.step == 1 and e.stage == "training" and control.stop())
    except RunStopped:
        pass
    other = prepare_snapshot(records(6), config, tmp_path / "b")
    with pytest.raises(ValueError, match="belongs to snapshot"):
        train(config, other.path, tmp_path / "o", checkpoint_dir=tmp_path / "ck")
    with pytest.raises(ValueError, match=r"other settings \(batch_size, learning_rate\)"):
        train(TrainConfig.from_dict({**config.to_dict(), "batch_size": 4, "learning_rate": 1e-4}), first.path,
              tmp_path / "o", checkpoint_dir=tmp_path / "ck")
