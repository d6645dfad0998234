"""Create a demo capture database: the live app's exact table, filled with spoken sentences.

The file holds only what the live app would write (the spec's DDL, nothing else), so the
trainer meets it exactly as it would meet a real capture: our side tables appear on first
connection. Rows carry realistic ASR mistakes to fix, timestamps spread over recent days in
bursts (sessions), some rows already reviewed or trained and, on request, the bad rows a real
capture file accumulates.
"""
from __future__ import annotations

import json
import sqlite3
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from review.audio import encode_clip
from review.schema import CLIP_TABLE, create_seed_database
from review.speech import SpeechSynthesisError, espeak_path, generate_utterances

REVIEWED_RATIO = 0.2  # the oldest fifth was reviewed in an earlier session ...
TRAINED_RATIO = 0.5  # ... and half of that already went into a fine-tune


def session_timestamps(n: int, rng: np.random.Generator, *, days: int = 14, now: datetime | None = None) -> list[str]:
    """Ascending capture times in the live app's CURRENT_TIMESTAMP format, in bursts per session."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    start = now - timedelta(days=days)
    out: list[datetime] = []
    t = start + timedelta(hours=float(rng.uniform(8, 12)))
    while len(out) < n:
        # A session: 3-15 utterances a few seconds to two minutes apart.
        for _ in range(int(rng.integers(3, 16))):
            out.append(t)
            t += timedelta(seconds=float(rng.uniform(8, 120)))
        t += timedelta(hours=float(rng.uniform(2, 30)))
    out = out[:n]
    # Squeeze into [start, now] while keeping the shape of the bursts.
    span = (out[-1] - out[0]).total_seconds() or 1.0
    target = (now - timedelta(minutes=5) - start).total_seconds()
    scale = min(1.0, target / span)
    return [(start + (ts - out[0]) * scale).strftime("%Y-%m-%d %H:%M:%S") for ts in out]


def bad_rows(rng: np.random.Generator, good_blob: bytes, ts: str) -> list[tuple[str, tuple]]:
    """Rows a real capture file collects: (what is wrong, (transcript, blob, reviewed, trained, timestamp))."""
    return [
        ("corrupt blob (not zlib)", ("This clip was written by a crashed process.", rng.bytes(4000), 0, 0, ts)),
        ("truncated blob", ("Power went out while this was saved.", good_blob[: len(good_blob) // 3], 0, 0, ts)),
        ("NULL blob", ("The audio for this one never arrived.", None, 0, 0, ts)),
        ("odd-length PCM", ("Half a sample too many.", zlib.compress(b"\x01\x00" * 8000 + b"\x01"), 0, 0, ts)),
        ("NULL transcript", (None, good_blob, 0, 0, ts)),
        ("empty transcript", ("", good_blob, 0, 0, ts)),
        ("ISO timestamp with zone", ("Timestamp written by another client.", good_blob, 0, 0, "2025-10-04T14:23:15.250+02:00")),
        ("epoch timestamp", ("Timestamp stored as a number.", good_blob, 0, 0, 1728051795)),
        ("garbage timestamp", ("Timestamp that is not a date.", good_blob, 0, 0, "yesterday-ish")),
        ("NULL timestamp", ("Timestamp missing entirely.", good_blob, 0, 0, None)),
    ]


class Command(BaseCommand):
    help = "Create an SQLite file in the live app's exact schema, filled with synthesized speech clips."

    def add_arguments(self, parser):
        parser.add_argument("path", help="SQLite file to create")
        parser.add_argument("--clips", type=int, default=200, help="number of speech clips (default 200)")
        parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same database")
        parser.add_argument("--force", action="store_true", help="replace the file if it exists")
        parser.add_argument("--with-bad-rows", action="store_true",
                            help="also add corrupt/NULL blobs, NULL transcripts and odd timestamps")
        parser.add_argument("--no-espeak", action="store_true", help="use the built-in signal even if espeak-ng is installed")
        parser.add_argument("--truth", metavar="JSONL", help="also write what each clip really says (id, truth, transcript, voice, mistakes)")

    def handle(self, *args, path, clips, seed, force, with_bad_rows, no_espeak, truth, **options):
        if clips < 1:
            raise CommandError("--clips must be at least 1")
        target = Path(path)
        if target.exists():
            if not force:
                raise CommandError(f"{target} exists; pass --force to replace it")
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)

        espeak = None if no_espeak else espeak_path()
        if espeak:
            self.stdout.write(f"Synthesizing {clips} clips with espeak-ng ({espeak}) into {target}")
        else:
            reason = "--no-espeak given" if no_espeak else "espeak-ng is not installed"
            self.stdout.write(self.style.WARNING(
                f"{reason}: using a built-in synthetic voiced signal (speech-like, not intelligible) for {clips} clips"
            ))

        rng = np.random.default_rng(seed)
        stamps = session_timestamps(clips, rng)
        n_reviewed = int(round(clips * REVIEWED_RATIO))
        n_trained = int(n_reviewed * TRAINED_RATIO)

        create_seed_database(target)
        conn = sqlite3.connect(target)
        truth_rows = []
        try:
            utterances = generate_utterances(clips, seed=seed, use_espeak=bool(espeak))
            rows, first_blob = [], None
            for i, utt in enumerate(tqdm(utterances, total=clips, desc="clips", unit="clip")):
                blob = encode_clip(utt.samples)
                first_blob = first_blob or blob
                reviewed = i < n_reviewed
                # A reviewed row already carries the reviewer's correction: the truth.
                rows.append((utt.truth if reviewed else utt.transcript, blob, int(reviewed), int(i < n_trained), stamps[i]))
                truth_rows.append({"truth": utt.truth, "transcript": rows[-1][0], "voice": utt.voice,
                                   "mistakes": list(utt.mistakes) if not reviewed else [],
                                   "duration_s": round(utt.duration_s, 3)})
            extra = bad_rows(rng, first_blob, stamps[-1]) if with_bad_rows else []
            # Bad rows land at random places among the good ones, as they would in a real file.
            n_bad = len(extra)
            slots = sorted(rng.choice(np.arange(n_reviewed, clips + 1), size=len(extra), replace=True).tolist()) if extra else []
            with conn:
                ids = []
                for i, row in enumerate(rows):
                    while slots and slots[0] == i:
                        slots.pop(0)
                        conn.execute(f"INSERT INTO {CLIP_TABLE} (transcript, audio_blob, is_reviewed, is_trained, timestamp) VALUES (?,?,?,?,?)", extra.pop(0)[1])
                    ids.append(conn.execute(
                        f"INSERT INTO {CLIP_TABLE} (transcript, audio_blob, is_reviewed, is_trained, timestamp) VALUES (?,?,?,?,?)", row
                    ).lastrowid)
                for _, bad in extra:
                    conn.execute(f"INSERT INTO {CLIP_TABLE} (transcript, audio_blob, is_reviewed, is_trained, timestamp) VALUES (?,?,?,?,?)", bad)
        except BaseException as e:
            # Never leave a half-filled demo file behind: the run command would take it as done.
            conn.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            if isinstance(e, SpeechSynthesisError):
                raise CommandError(str(e)) from e
            raise
        conn.close()

        if truth:
            with open(truth, "w", encoding="utf-8") as fh:
                for clip_id, info in zip(ids, truth_rows, strict=True):
                    fh.write(json.dumps({"id": clip_id, **info}) + "\n")
        wrong = sum(1 for t in truth_rows if t["truth"] != t["transcript"])
        seconds = sum(t["duration_s"] for t in truth_rows)
        bad_note = f", {n_bad} bad rows" if with_bad_rows else ""
        self.stdout.write(self.style.SUCCESS(
            f"Created {target}: {clips} clips ({seconds / 60:.1f} min of audio), {wrong} transcripts with ASR mistakes, "
            f"{n_reviewed} reviewed, {n_trained} trained{bad_note}"
        ))
