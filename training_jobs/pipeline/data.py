"""Turn reviewed clips into a frozen, hashed training snapshot.

The training side (possibly another machine, a GPU worker) reads only what this module writes:
a Hugging Face `datasets` DatasetDict on disk plus `manifest.json` listing every clip id per
split with its content hash, every excluded clip with its reason, and the config. The snapshot
hash therefore names exactly which audio and text a model was trained on.

Splits come from a hash of the clip id alone, so a clip never moves between train and test when
other clips are added, removed or re-reviewed, and two runs over the same data agree.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from review.audio import SAMPLE_RATE, measure

from .config import TrainConfig
from .progress import Progress, ProgressCallback, noop
from .source import ClipRecord, ExcludedClip

SPLITS = ("train", "validation", "test")
MANIFEST = "manifest.json"
DATASET_DIR = "dataset"
MAX_LABEL_TOKENS = 448  # Whisper's decoder positions (max_target_positions)


@dataclass(frozen=True)
class ValidationLimits:
    """Bounds for a usable (audio, transcript) pair. Speaking-rate bounds catch a transcript that
    does not belong to its audio: Whisper hallucinating on silence, or text cut off mid-clip."""

    min_seconds: float = 0.3
    max_seconds: float = 30.0
    max_chars_per_s: float = 30.0
    max_words_per_s: float = 7.0
    min_chars_per_s: float = 0.5  # only checked on clips longer than `rate_floor_after_s`
    min_words_per_s: float = 0.1
    rate_floor_after_s: float = 3.0
    max_silence_ratio: float = 0.95
    min_rms_dbfs: float = -55.0
    max_clipping_ratio: float = 0.01
    max_label_tokens: int = MAX_LABEL_TOKENS


def check_clip(record: ClipRecord, limits: ValidationLimits = ValidationLimits(), tokenizer=None) -> tuple[str, str] | None:
    """Return (code, reason) when the clip should not be trained on, else None."""
    text = record.transcript.strip()
    seconds = len(record.samples) / SAMPLE_RATE
    if not text:
        return "empty_text", "transcript is empty"
    if seconds < limits.min_seconds:
        return "too_short", f"audio is {seconds:.2f} s, shorter than {limits.min_seconds:g} s"
    if seconds > limits.max_seconds:
        return "too_long", f"audio is {seconds:.1f} s, longer than Whisper's {limits.max_seconds:g} s window"
    chars, words = len(text), len(text.split())
    if chars / seconds > limits.max_chars_per_s or words / seconds > limits.max_words_per_s:
        return "rate_too_high", (
            f"{chars} characters / {words} words in {seconds:.1f} s is faster than anyone speaks: "
            "the transcript is probably longer than the audio"
        )
    if seconds > limits.rate_floor_after_s and (
        chars / seconds < limits.min_chars_per_s or words / seconds < limits.min_words_per_s
    ):
        return "rate_too_low", (
            f"only {chars} characters in {seconds:.1f} s: the transcript probably misses speech"
        )
    metrics = measure(record.samples)
    if metrics.silence_ratio > limits.max_silence_ratio or metrics.rms_dbfs < limits.min_rms_dbfs:
        return "silent", f"audio is almost silent (RMS {metrics.rms_dbfs:.0f} dBFS, {metrics.silence_ratio:.0%} silent frames)"
    if metrics.clipping_ratio > limits.max_clipping_ratio:
        return "clipped", f"{metrics.clipping_ratio:.1%} of samples are clipped at full scale"
    if tokenizer is not None:
        n_tokens = len(tokenizer(text).input_ids)
        if n_tokens > limits.max_label_tokens:
            return "too_many_tokens", f"transcript is {n_tokens} tokens, over Whisper's {limits.max_label_tokens}"
    return None


def split_for(clip_id: int, val: float, test: float) -> str:
    """"train", "validation" or "test" from a hash of the id alone (stable, independent of others)."""
    digest = hashlib.sha256(f"s2s-split:{int(clip_id)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test:
        return "test"
    if u < test + val:
        return "validation"
    return "train"


@dataclass
class SnapshotInfo:
    path: Path
    counts: dict[str, int]
    excluded: list[ExcludedClip]
    manifest_hash: str
    manifest: dict = field(default_factory=dict, repr=False)


def _features():
    import datasets

    return datasets.Features({
        "id": datasets.Value("int64"),
        "audio": datasets.Sequence(datasets.Value("float32")),
        "text": datasets.Value("string"),
        "split": datasets.Value("string"),
    })


def prepare_snapshot(
    records: list[ClipRecord],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    tokenizer=None,
    excluded: list[ExcludedClip] | None = None,
    limits: ValidationLimits = ValidationLimits(),
    on_progress: ProgressCallback = noop,
) -> SnapshotInfo:
    """Validate, split and write the snapshot. `excluded` carries clips the reader already
    rejected (undecodable audio) so the manifest lists every clip that was left out."""
    import datasets

    datasets.disable_progress_bars()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    excluded = list(excluded or [])
    seen: dict[str, int] = {}
    rows: dict[str, list[ClipRecord]] = {s: [] for s in SPLITS}
    total = len(records)
    for i, record in enumerate(records, 1):
        problem = check_clip(record, limits, tokenizer)
        if problem is None and record.content_hash in seen:
            problem = ("duplicate", f"same audio and transcript as clip {seen[record.content_hash]}")
        if problem:
            excluded.append(ExcludedClip(record.id, problem[1], problem[0]))
        else:
            seen[record.content_hash] = record.id
            rows[split_for(record.id, config.val_split, config.test_split)].append(record)
        if i % 50 == 0 or i == total:
            on_progress(Progress("preparing", step=i, total=total, message=f"checked {i}/{total} clips"))
    excluded.sort(key=lambda e: e.id)

    splits_manifest = {s: [[r.id, r.content_hash] for r in rows[s]] for s in SPLITS}
    snapshot_hash = hashlib.sha256(json.dumps(splits_manifest, sort_keys=True).encode()).hexdigest()[:16]

    dataset_dict = datasets.DatasetDict({
        # Empty splits cannot round-trip through save_to_disk; load_snapshot recreates them.
        name: datasets.Dataset.from_dict(
            {
                "id": [r.id for r in recs],
                "audio": [r.samples.astype(np.float32) for r in recs],
                "text": [r.transcript.strip() for r in recs],
                "split": [name] * len(recs),
            },
            features=_features(),
        )
        for name, recs in rows.items()
        if recs
    })
    # Written beside the old one and swapped in, so re-preparing into the same directory never
    # leaves a mix of two snapshots (or a stale split) behind.
    tmp = out_dir / f".{DATASET_DIR}-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if dataset_dict:
        dataset_dict.save_to_disk(str(tmp))
    shutil.rmtree(out_dir / DATASET_DIR, ignore_errors=True)
    if dataset_dict:
        tmp.rename(out_dir / DATASET_DIR)
    counts = {s: len(rows[s]) for s in SPLITS}
    manifest = {
        "snapshot_hash": snapshot_hash,
        "counts": {**counts, "excluded": len(excluded)},
        "splits": splits_manifest,
        "excluded": [e.as_dict() for e in excluded],
        "config": config.to_dict(),
        "limits": limits.__dict__,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return SnapshotInfo(out_dir, counts, excluded, snapshot_hash, manifest)


def load_snapshot(path: str | Path):
    """(DatasetDict with all three splits, manifest dict) from a directory `prepare_snapshot` wrote."""
    import datasets

    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise FileNotFoundError(f"not a training snapshot (no {MANIFEST}): {path}")
    manifest = json.loads(manifest_file.read_text())
    present = datasets.load_from_disk(str(path / DATASET_DIR)) if (path / DATASET_DIR).exists() else {}
    dataset = datasets.DatasetDict({
        name: present[name] if name in present else datasets.Dataset.from_dict(
            {"id": [], "audio": [], "text": [], "split": []}, features=_features()
        )
        for name in SPLITS
    })
    for name in SPLITS:
        ids = [row[0] for row in manifest["splits"][name]]
        if list(dataset[name]["id"]) != ids:
            raise ValueError(f"snapshot {path} is inconsistent: {name} ids differ from its manifest")
    return dataset, manifest


def split_rows(split) -> list[tuple[int, np.ndarray, str]]:
    """(id, float32 samples, text) per row. Read through numpy format: the default would turn
    every sample into a Python float (about 30 bytes each, seconds per thousand clips)."""
    rows = split.with_format("numpy", columns=["audio"], output_all_columns=True)
    return [(int(r["id"]), np.asarray(r["audio"], dtype=np.float32), str(r["text"])) for r in rows]


def base_tokenizer(config: TrainConfig, cache_dir: str | Path):
    """The base model's tokenizer (to check label lengths before any training starts)."""
    from transformers import AutoTokenizer

    from .models import resolve_base_model

    return AutoTokenizer.from_pretrained(resolve_base_model(config.base_model, Path(cache_dir)))


def snapshot_from_database(
    s2s_path: str | Path,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    max_seconds: float = 600.0,
    on_progress: ProgressCallback = noop,
) -> SnapshotInfo:
    """Read the reviewed clips and write the snapshot: the one call both the command and the
    Celery task make. Undecodable clips are listed among the exclusions; with `cache_dir` the base
    model's tokenizer checks every transcript fits Whisper's label limit."""
    from .source import read_reviewed_clips

    records, excluded = read_reviewed_clips(s2s_path, only_untrained=config.only_untrained, max_seconds=max_seconds)
    tokenizer = base_tokenizer(config, cache_dir) if cache_dir is not None else None
    return prepare_snapshot(records, config, out_dir, tokenizer=tokenizer, excluded=excluded, on_progress=on_progress)
