"""How long Save & Next takes in a real browser: from the key press to the next clip on screen
and playing. Target: under 100 ms on localhost, thanks to prefetching the next clip's JSON,
peaks and audio while the reviewer works on the current one.

    .venv/bin/python bench/review_next_clip.py                 # 40 clips, 25 Save & Next presses
    .venv/bin/python bench/review_next_clip.py --write-docs    # ... and update docs/benchmarks.md

It starts the real app under uvicorn (same as the browser tests: fresh databases, espeak-ng
speech), logs in with headless Chromium and, for each step: edits the transcript, waits until the
page says the next clip is prefetched (as a reviewer who listened to the clip would), presses
Ctrl+Enter and records, in the page's own clock, when the next id is on screen and when its
audio fires `playing`. Each step is a real save (PATCH with the new text + reviewed flag).
For contrast it also times "Jump to ID" to clips the page never fetched (cold: JSON, peaks and
audio streamed on demand; time to shown and to `canplay`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "s2s_trainer.settings")

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, insert_speech_clip, start_live_app  # noqa: E402

OUT = ROOT / "bench" / "out"
DOCS = ROOT / "docs" / "benchmarks.md"
SENTENCES = [
    "Hello, how are you doing today?",
    "Can you remind me to call Siobhan tomorrow afternoon?",
    "The meeting moved to Thursday at ten in the morning.",
    "Please add carrots and a dozen eggs to the shopping list.",
    "Our cluster ran out of memory again last night.",
    "Set a timer for twenty five minutes, please.",
]

MEASURE_JS = """() => {
  performance.clearResourceTimings();  // the buffer holds 250 entries; each step starts empty
  const idEl = document.getElementById('entry-id');
  const before = idEl.textContent;
  const r = window.__bench = {t0: null, shown: null, playing: null, done: false};
  const onKey = (e) => { if (e.key === 'Enter' && e.ctrlKey && r.t0 === null) r.t0 = performance.now(); };
  window.addEventListener('keydown', onKey, {capture: true});
  const obs = new MutationObserver(() => {
    if (r.shown === null && idEl.textContent !== before) r.shown = performance.now();
  });
  obs.observe(idEl, {childList: true, characterData: true, subtree: true});
  // Media events do not bubble but do pass the capture phase: this sees both <audio> elements
  // (the page swaps in a standby element that preloaded the next clip).
  const onPlaying = () => {
    if (idEl.textContent === before) return;
    r.playing = performance.now();
    r.done = true;
    document.removeEventListener('playing', onPlaying, true);
    window.removeEventListener('keydown', onKey, {capture: true});
    obs.disconnect();
  };
  document.addEventListener('playing', onPlaying, true);
}"""

COLD_JS = """(target) => new Promise((resolve) => {
  const idEl = document.getElementById('entry-id');
  const r = {shown: null, ready: null};
  const t0 = performance.now();
  const obs = new MutationObserver(() => {
    if (r.shown === null && idEl.textContent === String(target)) r.shown = performance.now() - t0;
  });
  obs.observe(idEl, {childList: true, characterData: true, subtree: true});
  const onReady = () => {
    if (idEl.textContent !== String(target)) return;
    r.ready = performance.now() - t0;
    document.removeEventListener('canplay', onReady, true);
    obs.disconnect();
    resolve(r);
  };
  document.addEventListener('canplay', onReady, true);
  document.getElementById('jump-id').value = String(target);
  document.getElementById('jump-form').requestSubmit();
})"""


def summary(values: list[float]) -> dict:
    values = sorted(values)
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1),
        "p90_ms": round(values[min(len(values) - 1, int(0.9 * len(values)))], 1),
        "max_ms": round(values[-1], 1),
    }


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())[1].strip()
    except (OSError, TypeError):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def run(clips: int, steps: int, cold: int) -> dict:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="review-bench-") as tmp:
        server = start_live_app(Path(tmp))
        try:
            ids = [insert_speech_clip(server.s2s_path, SENTENCES[i % len(SENTENCES)], transcript=f"clip {i} draft")
                   for i in range(clips)]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                chromium_version = browser.version
                ctx = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800})
                page = ctx.new_page()
                page.goto("/accounts/login/")
                page.fill("#id_username", server.username)
                page.fill("#id_password", server.password)
                page.click("button[type=submit]")
                page.wait_for_url(lambda url: "/accounts/login/" not in url)
                page.goto(f"/?id_min={ids[0]}&id_max={ids[-1]}&id={ids[0]}")
                page.wait_for_function("() => document.getElementById('review-app').dataset.ready === '1'")

                shown, playing, saves = [], [], []
                load = os.getloadavg()[0]
                for step in range(steps):
                    current = int(page.inner_text("#entry-id"))
                    nxt = ids[ids.index(current) + 1]
                    page.wait_for_function(f"() => document.getElementById('review-app').dataset.prefetched === '{nxt}'")
                    page.fill("#editor", f"Clip {step} reviewed.")
                    page.evaluate(MEASURE_JS)
                    page.keyboard.press("Control+Enter")
                    page.wait_for_function("() => window.__bench.done", timeout=10_000)
                    r = page.evaluate("window.__bench")
                    shown.append(r["shown"] - r["t0"])
                    playing.append(r["playing"] - r["t0"])
                    # The PATCH is the only request for the bare entry URL (GETs carry the filter).
                    saves.append(page.evaluate(
                        "(url) => performance.getEntriesByType('resource').filter(e => e.name.endsWith(url)).pop().duration",
                        f"/api/entries/{current}"))
                    page.wait_for_timeout(150)  # a reviewer listens before the next press

                cold_shown, cold_ready = [], []
                # Spaced out: the page prefetches each target's neighbours, which must stay cold.
                for target in ids[steps + 3::3][:cold]:
                    r = page.evaluate(COLD_JS, target)
                    cold_shown.append(r["shown"])
                    cold_ready.append(r["ready"])
                browser.close()
        finally:
            server.stop()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "chromium": chromium_version,
        "clips": clips,
        "load_average_1min": round(load, 2),
        "save_round_trip": summary(saves),
        "save_next_shown": summary(shown),
        "save_next_playing": summary(playing),
        "cold_jump_shown": summary(cold_shown),
        "cold_jump_audio_ready": summary(cold_ready),
    }


def markdown(r: dict) -> str:
    def row(name, s):
        return f"| {name} | {s['n']} | {s['median_ms']} | {s['p90_ms']} | {s['max_ms']} |"

    return "\n".join([
        "## Review page",
        "",
        "`bench/review_next_clip.py`: headless Chromium against the real app (uvicorn, DEBUG off) on",
        "localhost; each Save & Next is a real save (PATCH with new text + reviewed) followed by the next",
        "clip; times in the page's own clock from the Ctrl+Enter keydown. Target: next clip shown and",
        "playing in under 100 ms.",
        "",
        f"Measured {r['date']} with `{r['command']}` on {r['machine']}; Chromium {r['chromium']};",
        f"{r['clips']} espeak-ng clips;",
        f"1-minute load average {r['load_average_1min']} at the start (the machine is shared with other work).",
        "",
        "| step | n | median ms | p90 ms | max ms |",
        "|---|---|---|---|---|",
        row("Save & Next: the save's PATCH round trip (inside the next two rows)", r["save_round_trip"]),
        row("Save & Next (prefetched): next clip on screen", r["save_next_shown"]),
        row("Save & Next (prefetched): next clip playing", r["save_next_playing"]),
        row("Jump to ID (cold, not prefetched): clip on screen", r["cold_jump_shown"]),
        row("Jump to ID (cold): audio `canplay`", r["cold_jump_audio_ready"]),
        "",
        "The prefetched path includes the save round trip: the page saves first and moves only when",
        "the server holds the text, so nothing typed is lost if the save fails.",
        "",
    ])


def write_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"^## Review page\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--cold", type=int, default=3, help="cold jumps to clips the page never fetched")
    ap.add_argument("--write-docs", action="store_true", help='rewrite the "## Review page" section of docs/benchmarks.md')
    args = ap.parse_args()
    if args.clips < args.steps + 3 * args.cold + 4:
        ap.error("--clips must be at least --steps + 3 * --cold + 4")
    result = run(args.clips, args.steps, args.cold)
    result["command"] = " ".join([".venv/bin/python bench/review_next_clip.py", *sys.argv[1:]])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "review_next_clip.json").write_text(json.dumps(result, indent=2))
    section = markdown(result)
    print(section)
    if args.write_docs:
        write_docs(section)
        print(f"updated {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
