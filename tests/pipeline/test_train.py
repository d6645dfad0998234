"""The training loop on a tiny random Whisper (real tokenizer, real features): seconds per run."""
import json
import threading
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.pipeline.training_fixtures import one_torch_thread, record, records, tiny_whisper_fixture  # noqa: F401
from training_jobs.pipeline.config import TrainConfig
from training_jobs.pipeline.data import prepare_snapshot
from training_jobs.pipeline.progress import LocalControl, RunStopped
from training_jobs.pipeline.train import TrainingError, collate, epoch_order, label_ids, train


def cfg(model_dir, **kw):
    base = dict(base_model=str(model_dir), batch_size=2, epochs=2, learning_rate=1e-3, val_split=0.2,
                test_split=0.2, checkpoint_every=100, seed=3)
    return TrainConfig(**{**base, **kw})


def weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def test_it_learns_and_writes_every_artifact(tiny_whisper, tmp_path):
    config = cfg(tiny_whisper, epochs=3)
    snap = prepare_snapshot(records(10), config, tmp_path / "snap")
    events = []
    result = train(config, snap.path, tmp_path / "out", on_progress=events.append)

    losses = [h["train_loss"] for h in result.history if "train_loss" in h]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert result.status == "completed" and result.metrics["steps"] == len(losses) == 12
    assert (result.model_dir / "model.safetensors").is_file()
    meta = json.loads((result.model_dir / "s2s_metadata.json").read_text())
    splits = snap.manifest["splits"]
    assert meta["snapshot_hash"] == snap.manifest_hash
    assert meta["clip_ids"] == {k: [r[0] for r in v] for k, v in splits.items()}
    assert meta["config"]["learning_rate"] == 1e-3 and meta["versions"]["torch"]
    assert result.trained_clip_ids == sorted(r[0] for r in splits["train"] + splits["validation"])
    assert result.metrics["test_clips"] == len(splits["test"]) > 0
    assert result.metrics["base_wer"] is not None and result.metrics["new_wer"] is not None
    for key in ("curves", "eval_md", "report_md", "summary_json"):
        assert result.report_paths[key].is_file()
    assert result.report_paths["curves"].read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "out" / "checkpoints").glob("step-*"))  # cleaned after success

    stages = [e.stage for e in events]
    assert stages[0] == "loading" and stages[-1] == "done"
    assert stages.index("training") < stages.index("evaluating") < stages.index("exporting")
    step_events = [e for e in events if e.stage == "training" and e.train_loss is not None]
    assert [e.step for e in step_events] == list(range(1, 13)) and step_events[0].total == 12
    assert all(e.learning_rate is not None and e.eta_s is not None and e.samples_per_s > 0 for e in step_events)
    assert any(e.wer is not None and e.val_loss is not None for e in events)  # validation each epoch


def test_gradient_accumulation_matches_a_bigger_batch(tiny_whisper, tmp_path):
    recs = [record(i, "open the window please") for i in range(1, 9)]  # equal label lengths
    big = cfg(tiny_whisper, batch_size=4, grad_accum=1, val_split=0.0, test_split=0.0, epochs=1)
    small = cfg(tiny_whisper, batch_size=2, grad_accum=2, val_split=0.0, test_split=0.0, epochs=1)
    snap = prepare_snapshot(recs, big, tmp_path / "snap")
    a = train(big, snap.path, tmp_path / "a")
    b = train(small, snap.path, tmp_path / "b")
    assert a.metrics["steps"] == b.metrics["steps"] == 2
    wa, wb = weights(a.model_dir), weights(b.model_dir)
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=1e-5, rtol=1e-4)


def test_freezing_the_encoder_trains_the_decoder_only(tiny_whisper, tmp_path):
    config = cfg(tiny_whisper, freeze_encoder=True, epochs=1, test_split=0.0, val_split=0.0)
    snap = prepare_snapshot(records(4), config, tmp_path / "snap")
    result = train(config, snap.path, tmp_path / "out")
    base, new = weights(tiny_whisper), weights(result.model_dir)
    assert all(torch.equal(base[k], new[k]) for k in base if k.startswith("model.encoder."))
    assert not torch.equal(base["model.decoder.layers.0.fc1.weight"], new["model.decoder.layers.0.fc1.weight"])


def test_lora_adapters_are_merged_into_plain_whisper_weights(tiny_whisper, tmp_path):
    config = cfg(tiny_whisper, lora=True, lora_rank=4, learning_rate=1e-2, epochs=2, batch_size=4)
    snap = prepare_snapshot(records(10), config, tmp_path / "snap")
    result = train(config, snap.path, tmp_path / "out")
    assert result.metrics["best_val_wer"] is not None and result.metrics["new_wer"] is not None
    base, new = weights(tiny_whisper), weights(result.model_dir)
    assert set(new) == set(base)  # no lora_A / lora_B keys left
    assert result.metrics["trainable_parameters"] < 10_000
    q = "model.decoder.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(base[q], new[q])
    assert torch.equal(base["model.decoder.layers.0.fc1.weight"], new["model.decoder.layers.0.fc1.weight"])


def test_gradient_checkpointing_changes_memory_not_results(tiny_whisper, tmp_path):
    plain = cfg(tiny_whisper, freeze_encoder=True, epochs=1, val_split=0.0, test_split=0.0)
    checkpointed = cfg(tiny_whisper, freeze_encoder=True, gradient_checkpointing=True, epochs=1, val_split=0.0,
                       test_split=0.0)
    snap = prepare_snapshot(records(4), plain, tmp_path / "snap")
    a = weights(train(plain, snap.path, tmp_path / "a").model_dir)
    b = weights(train(checkpointed, snap.path, tmp_path / "b").model_dir)
    assert not torch.equal(a["model.decoder.layers.0.fc1.weight"], weights(tiny_whisper)["model.decoder.layers.0.fc1.weight"])
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_features_past_the_cache_budget_are_computed_per_batch():
    from training_jobs.pipeline.features import log_mel
    from training_jobs.pipeline.train import FeatureCache

    clips = [r.samples for r in records(3)]
    cache = FeatureCache(clips, 80, budget_bytes=80 * 3000 * 4 * 2)  # room for two
    assert cache.cached[2] is None and cache.cached[1] is not None
    assert np.array_equal(cache[[2, 0]], np.stack([log_mel(clips[2]), log_mel(clips[0])]))


def test_early_stopping_ends_the_run_when_validation_wer_stalls(tiny_whisper, tmp_path):
    config = cfg(tiny_whisper, learning_rate=1e-8, eval_every=1, early_stopping_patience=2, epochs=5,
                 test_split=0.0)
    snap = prepare_snapshot(records(10), config, tmp_path / "snap")
    result = train(config, snap.path, tmp_path / "out")
    assert result.status == "early_stopped"
    assert result.metrics["steps"] == 3 and result.metrics["best_step"] == 1
    assert [h["step"] for h in result.history if "wer" in h] == [1, 2, 3]


def test_augmentation_multiplies_training_items_only(tiny_whisper, tmp_path):
    config = cfg(tiny_whisper, augment_speed=True, augment_noise_snr_db=20, epochs=1, val_split=0.2,
                 test_split=0.2, batch_size=4)
    snap = prepare_snapshot(records(5), config, tmp_path / "snap")
    result = train(config, snap.path, tmp_path / "out")
    assert snap.counts["train"] == 4 and snap.counts["test"] == 1
    summary = json.loads(result.report_paths["summary_json"].read_text())
    assert summary["data"]["train_items"] == 4 * snap.counts["train"]
    assert result.metrics["steps"] == -(-4 * snap.counts["train"] // 4)
    assert result.metrics["test_clips"] == snap.counts["test"]


def test_pause_blocks_between_steps_until_resumed(tiny_whisper, tmp_path):
    config = cfg(tiny_whisper, epochs=1, val_split=0.0, test_split=0.0)
    snap = prepare_snapshot(records(4), config, tmp_path / "snap")
    control = LocalControl()
    paused_at = {}

    def listen(event):
        if event.stage == "training" and event.step == 1:
            control.pause()
            paused_at["t"] = time.monotonic()
            threading.Timer(0.8, control.resume).start()
        if event.stage == "training" and event.step == 2:
            paused_at["next"] = time.monotonic()

    result = train(config, snap.path, tmp_path / "out", on_progress=listen, control=control)
    assert result.metrics["steps"] == 2
    assert paused_at["next"] - paused_at["t"] >= 0.75


def test_stop_writes_a_checkpoint_and_raises(tiny_whisper, tmp_path):
    config = cfg(tiny_whisper, epochs=2, val_split=0.0, test_split=0.0)
    snap = prepare_snapshot(records(4), config, tmp_path / "snap")
    control = LocalControl()
    with pytest.raises(RunStopped, match="stopped at step 1"):
        train(config, snap.path, tmp_path / "out", control=control, checkpoint_dir=tmp_path / "ck",
              on_progress=lambda e: e.step == 1 and e.stage == "training" and control.stop())
    assert (tmp_path / "ck" / "step-0000001" / "state.pt").is_file()
    assert not (tmp_path / "out" / "model").exists()


def test_it_refuses_clear_impossibilities(tiny_whisper, tmp_path):
    snap = prepare_snapshot(records(2), TrainConfig(val_split=0.0, test_split=0.0), tmp_path / "s")
    with pytest.raises(TrainingError, match="fp16 training needs a GPU"):
        train(cfg(tiny_whisper, precision="fp16", device="cpu"), snap.path, tmp_path / "o1")
    empty = prepare_snapshot([], TrainConfig(), tmp_path / "empty")
    with pytest.raises(TrainingError, match="no training clips"):
        train(cfg(tiny_whisper), empty.path, tmp_path / "o2")
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        train(cfg(tiny_whisper, batch_size=0), snap.path, tmp_path / "o3")


def test_labels_are_padded_with_minus_100_only_to_the_batch_longest():
    feats = np.zeros((3, 80, 3000), dtype=np.float32)
    batch = collate([0, 2], feats, [[5, 6, 7], [1], [8]])
    assert batch["labels"].tolist() == [[5, 6, 7], [8, -100, -100]]
    assert batch["input_features"].shape == (2, 80, 3000)


def test_labels_leave_the_start_token_to_the_model():
    from tests.pipeline.training_fixtures import bundled_tokenizer

    ids = label_ids(bundled_tokenizer(), "Hello world.", 50257)
    assert ids[0] == 50362 and ids[-1] == 50256  # <|notimestamps|> ... <|endoftext|>


def test_data_order_is_a_function_of_seed_and_epoch():
    assert epoch_order(1, 0, 10) == epoch_order(1, 0, 10)
    assert epoch_order(1, 0, 10) != epoch_order(1, 1, 10)
    assert sorted(epoch_order(1, 3, 10)) == list(range(10))
