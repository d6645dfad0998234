"""A short stand-in for the training pipeline, plugged in through S2S_TRAINING_PIPELINE.

It is not a mock of the plumbing: it runs inside the real Celery worker, reads the real S2S file,
emits real `Progress` events through the relay, honours the real Redis `RunControl` between
steps, writes a checkpoint and raises `RunStopped` on stop, continues from that checkpoint on
resume, and marks clips trained. It only replaces hours of Whisper training with
`max_steps` steps of `S2S_STANDIN_STEP_S` seconds each.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from training_jobs.pipeline.progress import Progress, RunStopped

DEFAULT_STEPS = 30


def step_seconds() -> float:
    return float(os.environ.get("S2S_STANDIN_STEP_S", "0.05"))


class StandInPipeline:
    def prepare(self, *, config, s2s_path, out_dir: Path, on_progress) -> dict:
        out_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(s2s_path)
        try:
            sql = "SELECT id FROM s2s_training_data WHERE is_reviewed = 1"
            if config.only_untrained:
                sql += " AND COALESCE(is_trained, 0) = 0"
            ids = [row[0] for row in conn.execute(sql + " ORDER BY id")]
        finally:
            conn.close()
        if not ids:
            raise ValueError("no reviewed clips to train on")
        for i, _ in enumerate(ids, start=1):
            on_progress(Progress("preparing", step=i, total=len(ids)))
        on_progress(Progress("preparing", step=len(ids), total=len(ids), message=f"snapshot of {len(ids)} clips"))
        (out_dir / "manifest.json").write_text(json.dumps(ids))
        return {"path": str(out_dir), "counts": {"train": len(ids)}, "manifest_hash": f"standin-{len(ids)}",
                "clip_ids": ids}

    def train(self, *, config, snapshot_dir: Path, output_dir: Path, checkpoint_dir: Path, on_progress, control) -> dict:
        ids = json.loads((Path(snapshot_dir) / "manifest.json").read_text())
        total = config.max_steps or DEFAULT_STEPS
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        state_file = checkpoint_dir / "state.json"
        start = json.loads(state_file.read_text())["step"] if state_file.exists() else 0
        on_progress(Progress("loading", step=start, total=total,
                             message=f"resuming from checkpoint at step {start}" if start else "starting from the base model"))
        ran = []
        t0 = time.time()
        for step in range(start + 1, total + 1):
            control.wait_while_paused()
            if control.should_stop():
                state_file.write_text(json.dumps({"step": step - 1}))
                _append(checkpoint_dir / "steps.jsonl", ran)
                raise RunStopped(f"checkpoint written at step {step - 1}")
            time.sleep(step_seconds())
            ran.append(step)
            per_step = (time.time() - t0) / len(ran)
            on_progress(Progress("training", step=step, total=total, epoch=step / 10, train_loss=2.0 / step ** 0.5,
                                 learning_rate=config.learning_rate, samples_per_s=config.batch_size / max(per_step, 1e-6),
                                 eta_s=per_step * (total - step)))
            if step % 10 == 0:
                state_file.write_text(json.dumps({"step": step}))
                on_progress(Progress("training", step=step, total=total, epoch=step / 10, val_loss=2.2 / step ** 0.5,
                                     wer=0.3 / step ** 0.3, message=f"validation at step {step}"))
        _append(checkpoint_dir / "steps.jsonl", ran)
        on_progress(Progress("evaluating", step=total, total=total, wer=0.1, message="test set: base WER 0.30, new WER 0.10"))
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "model.txt").write_text("stand-in model\n")
        on_progress(Progress("done", step=total, total=total, message="saved"))
        return {"status": "completed", "metrics": {"wer": 0.1, "base_wer": 0.3}, "model_dir": str(output_dir),
                "report_md": str(output_dir / "report.md"), "trained_clip_ids": ids, "history": []}

    def finish(self, *, s2s_path, clip_ids, backup_dir: Path) -> dict:
        conn = sqlite3.connect(s2s_path)
        try:
            conn.executemany("UPDATE s2s_training_data SET is_trained = 1 WHERE id = ?", [(i,) for i in clip_ids])
            conn.commit()
        finally:
            conn.close()
        return {"backup": str(backup_dir / "standin-backup.db")}


def _append(path: Path, steps: list[int]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(steps) + "\n")
