"""Real model versions for the registry tests: a data snapshot whose test split holds given clips,
and a succeeded TrainingRun whose evaluation report was written by the real `evaluate` code, so
`services.model_register_run` registers it exactly as after a real run."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training_jobs.pipeline import evaluate
from training_jobs.pipeline.config import TrainConfig
from training_jobs.pipeline.data import prepare_snapshot, split_for
from training_jobs.pipeline.source import ClipRecord, content_hash


def test_split_ids(n: int, config: TrainConfig = TrainConfig()) -> list[int]:
    """The first n clip ids the hash split puts in the test split."""
    ids, candidate = [], 1
    while len(ids) < n:
        if split_for(candidate, config.val_split, config.test_split) == "test":
            ids.append(candidate)
        candidate += 1
    return ids


def make_snapshot(out_dir: Path, texts: list[str], samples: list[np.ndarray]) -> tuple[Path, list[int]]:
    """A real snapshot (datasets on disk + manifest) with exactly these clips in its test split."""
    ids = test_split_ids(len(texts))
    records = []
    for cid, text, audio in zip(ids, texts, samples, strict=True):
        pcm = np.clip(np.round(audio * 32768), -32768, 32767).astype("<i2")
        records.append(ClipRecord(cid, text, pcm.astype(np.float32) / 32768.0, content_hash(text, pcm)))
    info = prepare_snapshot(records, TrainConfig(), out_dir)
    assert info.counts["test"] == len(texts), info.excluded
    return out_dir, ids


def succeeded_run(output_dir: Path, model_dir: Path, snapshot: Path, ids, refs, base_hyps, new_hyps, **config):
    """A succeeded TrainingRun whose artifacts are a model directory and a real eval.json."""
    from training_jobs.models import RunStatus, TrainingRun

    report = evaluate.compare(refs, base_hyps, new_hyps, ids)
    eval_json, _ = evaluate.write_report(report, output_dir)
    return TrainingRun.objects.create(
        config=TrainConfig(**config).to_dict(), status=RunStatus.SUCCEEDED, snapshot_path=str(snapshot),
        metrics={"new_wer": report.new["wer"], "new_cer": report.new["cer"], "base_wer": report.base["wer"],
                 "base_cer": report.base["cer"], "test_clips": len(ids)},
        artifacts={"model_dir": str(model_dir), "report_paths": {"eval_json": str(eval_json)},
                   "snapshot_hash": "snap-" + output_dir.name},
    )
