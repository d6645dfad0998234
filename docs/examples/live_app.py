"""A minimal live app that follows S2S Trainer's deployments: it loads `<live dir>/current` with
faster-whisper and swaps to the new model, without a restart, when S2S Trainer says so.

The contract (docs/live-app.md): load the directory `current` points to; when a message arrives on
the Redis channel (default `s2s:live-model`) or the `CHANGED` marker's mtime changes, load the new
`current` beside the old model and swap the reference once it is ready (a transcription in flight
finishes on the old model). If `current` cannot be loaded, fall back to `previous`.

    python docs/examples/live_app.py --live-dir models/live --redis-url redis://127.0.0.1:6379/0 \
        [--channel s2s:live-model] [--probe clip.wav]

Prints one JSON line per event on stdout: {"event": "loaded", "version": ..., "text": ...} (the
text is the probe clip's transcript with the model just loaded) or {"event": "load_failed", ...}.
Needs only faster-whisper (and redis-py for the channel; polling works without it).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from faster_whisper import WhisperModel, decode_audio


class HotSwapModel:
    """The live model: `transcribe` always uses a complete model; `reload` swaps in a new one."""

    def __init__(self, live_dir: str | Path, compute_type: str = "default", device: str = "cpu"):
        self.live_dir = Path(live_dir)
        self.compute_type, self.device = compute_type, device
        self.model: WhisperModel | None = None
        self.version: str | None = None
        self._lock = threading.Lock()

    def reload(self) -> dict | None:
        """Load `current` (or, when it fails, `previous`) if it is not the model in use. Returns
        what happened, or None when nothing changed."""
        failures = []
        for link in ("current", "previous"):
            path = self.live_dir / link
            if not path.exists():
                continue
            path = path.resolve()
            if path.name == self.version:
                return None if link == "current" else {"event": "load_failed", "failures": failures}
            try:
                model = WhisperModel(str(path), device=self.device, compute_type=self.compute_type)
            except Exception as e:  # noqa: BLE001 - a broken model must not take the app down
                failures.append({"version": path.name, "error": f"{type(e).__name__}: {e}"})
                continue
            with self._lock:  # the swap itself; the old model is freed once no caller holds it
                self.model, self.version = model, path.name
            return {"event": "loaded", "version": path.name, "from": link, "failures": failures}
        return {"event": "load_failed", "failures": failures} if failures else None

    def transcribe(self, audio) -> str:
        with self._lock:
            model = self.model
        if model is None:
            raise RuntimeError("no live model loaded yet")
        segments, _ = model.transcribe(audio, beam_size=1, without_timestamps=True,
                                       condition_on_previous_text=False)
        return "".join(s.text for s in segments).strip()


def listen_redis(url: str, channel: str, wake: threading.Event) -> None:
    """Set `wake` on every message on the channel (runs in a daemon thread)."""
    import redis

    while True:
        try:
            pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(channel)
            emit({"event": "subscribed", "channel": channel})
            for message in pubsub.listen():
                if message["type"] == "message":
                    wake.set()
        except Exception as e:  # noqa: BLE001 - Redis restarts: keep polling the marker, retry
            emit({"event": "redis_error", "error": str(e)})
            time.sleep(2)


def marker_mtime(live_dir: Path) -> float | None:
    try:
        return (live_dir / "CHANGED").stat().st_mtime_ns
    except OSError:
        return None


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live-dir", required=True, help="S2S_LIVE_MODEL_DIR")
    parser.add_argument("--redis-url", help="listen for promotions here (else only poll the marker)")
    parser.add_argument("--channel", default="s2s:live-model")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between marker checks")
    parser.add_argument("--probe", help="audio file to transcribe after each load")
    parser.add_argument("--compute-type", default="default")
    parser.add_argument("--max-seconds", type=float, default=0, help="exit after this long (0: run forever)")
    args = parser.parse_args(argv)

    live = HotSwapModel(args.live_dir, compute_type=args.compute_type)
    probe = decode_audio(args.probe) if args.probe else None
    wake = threading.Event()
    if args.redis_url:
        threading.Thread(target=listen_redis, args=(args.redis_url, args.channel, wake), daemon=True).start()
    last_marker, deadline = None, time.monotonic() + args.max_seconds if args.max_seconds else None
    wake.set()  # load at start
    while deadline is None or time.monotonic() < deadline:
        marker = marker_mtime(live.live_dir)
        if wake.wait(args.poll) or marker != last_marker:
            wake.clear()
            last_marker = marker
            result = live.reload()
            if result:
                if result["event"] == "loaded" and probe is not None:
                    result["text"] = live.transcribe(probe)
                emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
