"""Build (once) the benchmark capture database: 20,000 clips of 2-12 s in the live app's schema.

Real captures are int16 speech with a microphone noise floor, which zlib barely shrinks
(about 85-95 % of the raw size). Blobs of that size are what make a naive query slow in SQLite
(the blob sits before the flag columns, so reading a flag walks the blob's overflow pages), so
the database must hold blobs as big as real ones. Synthesizing 20,000 distinct utterances would
take minutes; instead a pool of ~200 distinct clips (espeak-ng speech joined to a target length,
with a capture noise floor) is rendered once and reused, inserted in large transactions.

The result is cached under bench/out/ (git-ignored) with a JSON sidecar describing it; pass
`--rebuild` (or a different --clips/--seed) to make a new one.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from review.audio import SAMPLE_RATE, encode_clip  # noqa: E402
from review.schema import CLIP_TABLE, create_seed_database  # noqa: E402
from review.speech import capture, generate_utterances, inject_mistakes  # noqa: E402

OUT = ROOT / "bench" / "out"
BUILDER_VERSION = 1
POOL_SIZE = 200
TEN_SECOND_CLIPS = 10  # pool entries of exactly 10.0 s, for the WAV latency measurement
BATCH = 500


def render_pool(size: int, seed: int) -> list[tuple[np.ndarray, str, str]]:
    """`size` distinct clips of 2-12 s: (float32 samples, truth, ASR-like transcript)."""
    rng = np.random.default_rng(seed)
    raw = list(generate_utterances(size + 40, seed=seed))
    pool = []
    for i in range(size):
        target = 10.0 if i < TEN_SECOND_CLIPS else float(rng.uniform(2.0, 12.0))
        parts, texts, total = [], [], 0
        while total < target * SAMPLE_RATE:
            u = raw[int(rng.integers(len(raw)))]
            parts.append(u.samples)
            texts.append(u.truth)
            total += len(u.samples)
        samples = np.concatenate(parts)[: int(target * SAMPLE_RATE)]
        fade = min(len(samples), 800)
        samples[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        if rng.random() < 0.3:  # some captures are noisier rooms
            samples = capture(samples, rng)[: int(target * SAMPLE_RATE)]
        # The transcript covers the words that made it into the clip (roughly: whole sentences).
        kept = max(1, round(len(texts) * target * SAMPLE_RATE / total))
        truth = " ".join(texts[:kept])
        transcript, _ = inject_mistakes(truth, rng) if rng.random() < 0.8 else (truth, ())
        pool.append((samples, truth, transcript))
    return pool


def build(path: Path, *, clips: int, seed: int, days: int = 120) -> dict:
    """Write the database and return its description (also saved next to it as JSON)."""
    started = time.perf_counter()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    pool = render_pool(POOL_SIZE, seed)
    blobs = [encode_clip(s) for s, _, _ in pool]
    pool_s = time.perf_counter() - started

    create_seed_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    # Building only: no journal safety needed (a crash means rebuild). The live file is WAL,
    # so WAL is switched back on at the end.
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    rng = np.random.default_rng(seed + 1)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)
    step = days * 86400 / clips
    choice = rng.integers(POOL_SIZE, size=clips)
    # Older clips are more likely reviewed; a reviewed clip is trained if it is old enough.
    age = 1 - np.arange(clips) / clips
    reviewed = rng.random(clips) < 0.15 + 0.5 * age
    trained = reviewed & (age > 0.6) & (rng.random(clips) < 0.8)
    from tqdm import tqdm

    total_bytes, ten_second_ids = 0, []
    with tqdm(total=clips, desc="bench rows", unit="row") as bar:
        for lo in range(0, clips, BATCH):
            rows = []
            for i in range(lo, min(clips, lo + BATCH)):
                k = int(choice[i])
                _, truth, transcript = pool[k]
                ts = start + timedelta(seconds=i * step + float(rng.uniform(0, step * 0.5)))
                rows.append((truth if reviewed[i] else transcript, blobs[k], int(reviewed[i]), int(trained[i]),
                             ts.strftime("%Y-%m-%d %H:%M:%S")))
                total_bytes += len(blobs[k])
                if k < TEN_SECOND_CLIPS:
                    ten_second_ids.append(i + 1)  # fresh AUTOINCREMENT table: ids are 1..clips
            conn.execute("BEGIN")
            conn.executemany(f"INSERT INTO {CLIP_TABLE} (transcript, audio_blob, is_reviewed, is_trained, timestamp) "
                             "VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            bar.update(len(rows))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    raw_bytes = sum(len(s) * 2 for s in (pool[int(k)][0] for k in choice))
    info = {
        "builder_version": BUILDER_VERSION, "clips": clips, "seed": seed, "path": str(path),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"), "build_seconds": round(time.perf_counter() - started, 1),
        "pool_seconds": round(pool_s, 1), "blob_bytes": total_bytes, "raw_pcm_bytes": raw_bytes,
        "compression_ratio": round(total_bytes / raw_bytes, 3), "file_bytes": path.stat().st_size,
        "audio_hours": round(raw_bytes / 2 / SAMPLE_RATE / 3600, 1), "reviewed": int(reviewed.sum()),
        "trained": int(trained.sum()), "ten_second_ids": ten_second_ids[:200], "cold_start_done": False,
    }
    sidecar(path).write_text(json.dumps(info, indent=1))
    return info


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def ensure(path: Path, *, clips: int, seed: int, rebuild: bool = False) -> dict:
    """The cached database when it matches the request, a fresh build otherwise."""
    meta = sidecar(path)
    if not rebuild and path.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if (info.get("builder_version"), info.get("clips"), info.get("seed")) == (BUILDER_VERSION, clips, seed):
            return info
    return build(path, clips=clips, seed=seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=OUT / "api_bench.db")
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    info = ensure(args.path, clips=args.clips, seed=args.seed, rebuild=args.rebuild)
    print(json.dumps({k: v for k, v in info.items() if k != "ten_second_ids"}, indent=1))


if __name__ == "__main__":
    main()
