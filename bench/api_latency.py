"""API latency on a realistic capture database: entry JSON, filtered list, stats and a 10 s WAV.

    .venv/bin/python bench/api_latency.py                # build/reuse bench/out/api_bench.db, measure
    .venv/bin/python bench/api_latency.py --write-docs   # ... and rewrite the API section of docs/benchmarks.md
    .venv/bin/python bench/api_latency.py --explain      # ... and dump each endpoint's SQL + query plans

Two measurements of the same requests, so server overhead and view cost can be told apart:
  * HTTP: the real ASGI server (uvicorn, the one the Procfile runs; --server daphne to compare) on a free loopback port,
    requests over one keep-alive connection with `Authorization: Token ...`;
  * in-process: Django's test client calling the same URL stack (middleware, DRF, views)
    without a socket.
The database is built once (bench/api_db.py) and cached; the first connection of the app
creates its indexes on the 20,000-row table, which is timed separately as "cold start".
"""
from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import math
import os
import platform
import pstats
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_db import OUT, ensure  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SEARCH_WORDS = ["meeting", "database", "the", "pizza", "call", "Friday"]


@dataclass
class Scenario:
    name: str
    target_ms: float | None
    url: Callable[[random.Random], str]
    check: Callable[[int, bytes], str] = lambda status, body: "" if status == 200 else f"HTTP {status}"
    seed: int = 0  # scenarios with the same seed request the same ids in the same order


@dataclass
class Result:
    name: str
    transport: str
    target_ms: float | None
    times_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # this thread's CPU time: in-process only
    first_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    bytes: int = 0

    def pct(self, p: float, values: list[float] | None = None) -> float | None:
        xs = sorted(self.times_ms if values is None else values)
        if not xs:
            return None
        return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]

    def row(self) -> dict:
        p50 = self.pct(50)
        return {
            "name": self.name, "transport": self.transport, "n": len(self.times_ms), "target_ms": self.target_ms,
            "p50_ms": p50, "p95_ms": self.pct(95), "mean_ms": statistics.fmean(self.times_ms) if self.times_ms else None,
            "cpu_p50_ms": self.pct(50, self.cpu_ms), "first_ms": self.first_ms, "errors": self.errors, "bytes": self.bytes,
            "met": None if self.target_ms is None or p50 is None else (p50 < self.target_ms and not self.errors),
        }


# ---------------------------------------------------------------- environment and Django

def configure_env(db: Path, debug: bool, conn_max_age: int | None = None) -> dict:
    settings_module = "s2s_trainer.settings"
    if conn_max_age is not None:
        # An experiment, not a recommendation baked in: the project's settings plus persistent
        # database connections, as a module in bench/out/ that the server can import too.
        (OUT / "bench_settings.py").write_text(
            "from s2s_trainer.settings import *  # noqa: F403\n"
            "for _db in DATABASES.values():  # noqa: F405\n"
            f"    _db['CONN_MAX_AGE'] = {conn_max_age}\n"
        )
        settings_module = "bench_settings"
        sys.path.insert(0, str(OUT))
    env = {
        "S2S_DATABASE": str(db),
        "DATABASE_URL": f"sqlite:///{OUT / 'api_bench_default.db'}",
        "DJANGO_DEBUG": "1" if debug else "0",
        "DJANGO_SECRET_KEY": "bench-only-not-a-secret",
        "LOG_LEVEL": "ERROR",  # a 404 per request would be logged otherwise
        "HF_HUB_OFFLINE": "1",
        "DJANGO_SETTINGS_MODULE": settings_module,
        "API_RATE_LIMIT": "100000000/hour",
    }
    if conn_max_age is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(OUT), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    os.environ.update(env)
    return env


def django_setup() -> str:
    """Migrate the bench's own default DB, make the user and return a DRF token."""
    import warnings

    import django

    warnings.filterwarnings("ignore", message="No directory at", module="django.core.handlers.base")
    django.setup()
    import logging

    logging.getLogger("django.request").setLevel(logging.ERROR)  # no "Not Found" line per request
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0, interactive=False)
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def reset_review_state(path: Path) -> None:
    """Make the file look like a fresh live capture again: drop our side tables and indexes.

    So "first open" really is the first, and the cold start (the app's first connection,
    which creates them) is measured on every run with the app's current index set.
    """
    conn = sqlite3.connect(path)
    try:
        ours = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name LIKE 's2s_review_%' AND type IN ('table', 'index')"
        ).fetchall()
        with conn:
            for kind, name in sorted(ours, key=lambda r: r[0] != "index"):  # indexes first
                conn.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
    finally:
        conn.close()


def cold_start() -> float:
    """First `s2s` connection to a fresh capture file: creates the side tables and indexes."""
    from django.db import connections

    conn = connections["s2s"]
    conn.close()
    t = time.perf_counter()
    conn.ensure_connection()
    return time.perf_counter() - t


# ---------------------------------------------------------------- what to measure

def scenarios(info: dict) -> list[Scenario]:
    clips = info["clips"]
    ten = info["ten_second_ids"]
    wav_len = 44 + 10 * 16000 * 2

    def entry(r):
        return f"/api/entries/{r.randint(1, clips)}"

    def entry_filtered(r):
        return f"/api/entries/{r.randint(1, clips)}?reviewed=0&ordering=-timestamp"

    def list_filtered(r):
        return f"/api/entries?reviewed=0&q={r.choice(SEARCH_WORDS)}&page={r.randint(1, 3)}"

    def list_deep(r):
        return f"/api/entries?page={r.randint(1, clips // 50)}"

    built = datetime.fromisoformat(info["built_at"]).date()

    def list_dates(r):
        start = built - timedelta(days=r.randint(31, 119))
        return f"/api/entries?date_from={start}&date_to={start + timedelta(days=30)}&ordering=-timestamp&page=1"

    def wav_check(status, body):
        if status != 200:
            return f"HTTP {status}"
        return "" if len(body) == wav_len and body[:4] == b"RIFF" else f"WAV of {len(body)} bytes"

    # The first open of a clip decodes its blob and caches duration + metrics (ClipMeta); the
    # second line asks for the very same ids again, as a reviewer going back would.
    return [
        Scenario("entry JSON, first open (decode + cache metrics)", 10, entry, seed=1),
        Scenario("entry JSON, opened before", 10, entry, seed=1),
        Scenario("entry JSON, prev/next under reviewed=0 by -timestamp", 10, entry_filtered, seed=2),
        Scenario("list: reviewed=0&q=WORD&page=1..3", 30, list_filtered, seed=3),
        Scenario("list: unfiltered, random page of 400", 30, list_deep, seed=4),
        Scenario("list: one month by date, -timestamp", 30, list_dates, seed=5),
        Scenario("stats", 30, lambda r: "/api/stats", seed=6),
        Scenario("10 s WAV", 15, lambda r: f"/api/entries/{r.choice(ten)}/audio", wav_check, seed=7),
        Scenario("peaks width=1000 (10 s clip)", None, lambda r: f"/api/entries/{r.choice(ten)}/peaks?width=1000", seed=8),
        # No view, no database: what the transport and middleware alone cost.
        Scenario("baseline: unknown URL (404)", None, lambda r: "/api/no-such-endpoint",
                 lambda status, body: "" if status == 404 else f"HTTP {status}", seed=9),
    ]


def measure(transport: str, fetch, scenario: Scenario, n: int, seed: int) -> Result:
    rng = random.Random(seed)
    res = Result(scenario.name, transport, scenario.target_ms)
    for i in range(n + 3):  # the first is reported on its own, two more warm up
        url = scenario.url(rng)
        cpu, t = time.thread_time(), time.perf_counter()
        status, body = fetch(url)
        ms, cpu_ms = (time.perf_counter() - t) * 1000, (time.thread_time() - cpu) * 1000
        problem = scenario.check(status, body)
        if problem:
            res.errors[problem] = res.errors.get(problem, 0) + 1
        if i == 0:
            res.first_ms = ms
        elif i >= 3:
            res.times_ms.append(ms)
            if transport == "in-process":
                res.cpu_ms.append(cpu_ms)
            res.bytes = max(res.bytes, len(body))
    return res


def in_process_fetcher(token: str):
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")

    def fetch(url):
        resp = client.get(url)
        body = b"".join(resp.streaming_content) if resp.streaming else resp.content
        return resp.status_code, body

    return fetch


class WsgiServer:
    """Comparison only: the same Django app behind wsgiref in a thread of this process (HTTP/1.1
    keep-alive), to tell the ASGI server's share of the HTTP time from the socket's."""

    def __init__(self, token: str):
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        from django.core.wsgi import get_wsgi_application

        class Handler(WSGIRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

        self.server = make_server("127.0.0.1", free_port(), get_wsgi_application(), handler_class=Handler)
        self.token = token

    def __enter__(self):
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.server.server_port, timeout=120)
        return self

    def fetch(self, url):
        self.conn.request("GET", url, headers={"Authorization": f"Token {self.token}"})
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def __exit__(self, *exc):
        self.conn.close()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AsgiServer:
    """The real ASGI server in a child process, stopped (by its own pid) on exit."""

    def __init__(self, env: dict, token: str, server: str = "uvicorn"):
        self.port = free_port()
        self.token = token
        bin_dir = Path(sys.executable).parent
        cmd = {
            "daphne": [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "--verbosity", "0"],
            "uvicorn": [str(bin_dir / "uvicorn"), "--host", "127.0.0.1", "--port", str(self.port),
                        "--log-level", "warning", "--no-access-log"],
        }[server]
        self.proc = subprocess.Popen(
            [*cmd, "s2s_trainer.asgi:application"],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.conn = None

    def __enter__(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start listening within 60 s")
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return self

    def fetch(self, url):
        try:
            self.conn.request("GET", url, headers={"Authorization": f"Token {self.token}", "Connection": "keep-alive"})
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            return 599, b""

    def __exit__(self, *exc):
        if self.conn:
            self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- diagnosis

class QueryLog:
    """A connection execute_wrapper: every statement with its parameters and time.

    Used instead of CaptureQueriesContext, which formats SQL with `sql % params` and so fails on
    statements written with `?` placeholders.
    """

    def __init__(self):
        self.queries = []

    def __call__(self, execute, sql, params, many, context):
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((sql, params, (time.perf_counter() - t) * 1000))


def explain(token: str, info: dict, path: Path) -> str:
    """Each scenario once in-process: every SQL statement it ran, its time and its query plan."""
    from django.db import connections

    fetch = in_process_fetcher(token)
    db = sqlite3.connect(info["path"])
    lines = ["# SQL per API request (bench/api_latency.py --explain)", ""]
    for sc in scenarios(info):
        url = sc.url(random.Random(sc.seed))
        log, log_default = QueryLog(), QueryLog()
        with connections["s2s"].execute_wrapper(log), connections["default"].execute_wrapper(log_default):
            t = time.perf_counter()
            status, _ = fetch(url)
            ms = (time.perf_counter() - t) * 1000
        lines += [f"## {sc.name}: `{url}` -> {status} in {ms:.1f} ms "
                  f"({len(log.queries)} s2s queries, {sum(q[2] for q in log.queries):.1f} ms; "
                  f"{len(log_default.queries)} default queries, {sum(q[2] for q in log_default.queries):.1f} ms)", ""]
        for sql, params, q_ms in log.queries:
            lines += ["```sql", sql, "```", f"params {list(params or [])[:12]}; {q_ms:.2f} ms; plan:"]
            try:
                plan = db.execute("EXPLAIN QUERY PLAN " + sql.replace("%s", "?"), params or ()).fetchall()
                lines += ["    " + str(row[3]) for row in plan]
            except sqlite3.Error as e:
                lines.append(f"    (plan unavailable: {e})")
            lines.append("")
    db.close()
    path.write_text("\n".join(lines))
    return str(path)


def profile(token: str, info: dict, name: str, n: int, path: Path) -> str:
    fetch = in_process_fetcher(token)
    (sc,) = [s for s in scenarios(info) if s.name.startswith(name)]
    rng = random.Random(2)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fetch(sc.url(rng))
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(40)
    path.write_text(buf.getvalue())
    return str(path)


# ---------------------------------------------------------------- reporting

def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    import django

    return {
        "nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(), "django": django.get_version(), "sqlite": sqlite3.sqlite_version,
        "load_avg": [round(x, 2) for x in os.getloadavg()], "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fmt(x):
    return "—" if x is None else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


def markdown(results: list[dict], info: dict, mach: dict, requests: int, debug: bool, cold_s) -> str:
    rows = {(r["name"], r["transport"]): r for r in results}
    names = list(dict.fromkeys(r["name"] for r in results))
    out = [
        "## API",
        "",
        f"Measured {mach['date']} with `.venv/bin/python bench/api_latency.py --write-docs` "
        f"({requests} requests per line after 2 warm-ups; the first request is listed on its own).",
        "",
        f"- Machine: {mach['nproc']} CPU cores ({mach['cpu']}), {mach['ram_gib']} GiB RAM; load average "
        f"{mach['load_avg'][0]} at the start, {mach['load_avg_end'][0]} at the end (a shared machine: other "
        "engineers' tests and training ran meanwhile, so wall times and p95 are noisy; the in-process CPU column, "
        "this thread's CPU time per request, is the load-independent figure). "
        f"Python {mach['python']}, Django {mach['django']}, SQLite {mach['sqlite']}, DEBUG {'on' if debug else 'off'}.",
        f"- Database: {info['clips']:,} clips of 2–12 s ({info['audio_hours']} h of audio), "
        f"{info['file_bytes'] / 1e9:.2f} GB file, blobs at {info['compression_ratio']:.0%} of raw int16 size "
        f"(speech with a capture noise floor; zlib as the live app), {info['reviewed']:,} reviewed, {info['trained']:,} trained. "
        "Built by `bench/api_db.py` from a pool of 200 distinct espeak-ng clips.",
        f"- Cold start: the app's first connection to a capture file it has not seen creates its side tables and "
        f"indexes on the clip table ({', '.join(info.get('indexes', []))}): {fmt(cold_s)} s on this file "
        "(once per file; the OS file cache was warm).",
        "- HTTP: uvicorn (the Procfile's server) on loopback, one keep-alive connection, `Authorization: Token`. In-process: Django's test "
        "client through the same middleware/DRF/views, no socket.",
        "",
        "| Request | Target p50 | HTTP p50 | HTTP p95 | in-process p50 | in-process p95 | in-process CPU p50 | first request | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        h, p = rows.get((name, "http"), {}), rows.get((name, "in-process"), {})
        target = h.get("target_ms") or p.get("target_ms")
        met = h.get("met") if h else p.get("met")
        errs = {**(h.get("errors") or {}), **(p.get("errors") or {})}
        note = ("yes" if met else "**no**") if met is not None else "—"
        if errs:
            note += " (errors: " + ", ".join(f"{k} ×{v}" for k, v in errs.items()) + ")"
        out.append(f"| {name} | {'< ' + fmt(target) + ' ms' if target else '—'} | {fmt(h.get('p50_ms'))} | "
                   f"{fmt(h.get('p95_ms'))} | {fmt(p.get('p50_ms'))} | {fmt(p.get('p95_ms'))} | {fmt(p.get('cpu_p50_ms'))} | "
                   f"{fmt(h.get('first_ms') if h else p.get('first_ms'))} | {note} |")
    out.append("")
    out.append("Times in milliseconds. Raw numbers: `bench/out/api_latency.json`.")
    notes = Path(__file__).with_name("api_notes.md")
    if notes.exists():  # the hand-written reading of the numbers: causes and fixes
        out += ["", notes.read_text().strip()]
    return "\n".join(line for line in out if line is not None) + "\n"


def write_docs_section(section: str, path: Path = DOCS) -> None:
    """Replace only the `## API` section; the rest of the file (e.g. Fine-tuning) belongs to others."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Benchmarks\n\n" + section + "\n## Fine-tuning\n\n_Measured by `bench/finetune_*.py`._\n")
        return
    text = path.read_text()
    match = re.search(r"^## API\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    if match:
        text = text[: match.start()] + section + "\n" + text[match.end():]
    else:
        head, sep, rest = text.partition("\n## ")
        text = head.rstrip("\n") + "\n\n" + section + ("\n## " + rest if sep else "")
    path.write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn",
                        help="ASGI server for the HTTP column (the Procfile runs uvicorn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached database")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per line")
    parser.add_argument("--only", help="measure only scenarios whose name starts with this")
    parser.add_argument("--transport", choices=["both", "http", "in-process", "wsgi"], default="both",
                        help="both = in-process + http (uvicorn); wsgi = wsgiref comparison only")
    parser.add_argument("--debug", action="store_true", help="run with DJANGO_DEBUG on (default off, as in production)")
    parser.add_argument("--explain", action="store_true", help="write each request's SQL and query plans to bench/out/api_queries.md")
    parser.add_argument("--profile", metavar="SCENARIO", help="cProfile in-process requests of one scenario into bench/out/")
    parser.add_argument("--quiet-load", type=float, default=0.0, metavar="LOAD",
                        help="wait (up to --quiet-wait s) until the 1-minute load average is below LOAD before measuring")
    parser.add_argument("--quiet-wait", type=float, default=600.0)
    parser.add_argument("--conn-max-age", type=int, metavar="S",
                        help="experiment: run with CONN_MAX_AGE=S on both databases (persistent connections)")
    parser.add_argument("--from-json", action="store_true",
                        help="measure nothing: print (and with --write-docs write) the section from bench/out/api_latency.json")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the API section of docs/benchmarks.md")
    args = parser.parse_args(argv)

    if args.from_json:
        saved = json.loads((OUT / "api_latency.json").read_text())
        section = markdown(saved["results"], saved["database"], saved["machine"], saved["requests"],
                           saved["debug"], saved["cold_start_seconds"])
        print(section)
        if args.write_docs:
            write_docs_section(section)
        return

    db = OUT / ("api_bench.db" if args.clips == 20_000 else f"api_bench_{args.clips}.db")
    info = ensure(db, clips=args.clips, seed=args.seed, rebuild=args.rebuild)
    reset_review_state(db)
    env = configure_env(db, args.debug, args.conn_max_age)
    token = django_setup()
    cold_s = round(cold_start(), 2)
    with sqlite3.connect(db) as conn:
        info["indexes"] = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 's2s_training_data' AND sql IS NOT NULL")]
    mach = machine()
    print(f"database {db} ({info['file_bytes'] / 1e9:.2f} GB, {info['clips']} clips); cold start {cold_s} s; "
          f"{mach['nproc']} cores, load {mach['load_avg']}", flush=True)

    if args.explain:
        print("query plans ->", explain(token, info, OUT / "api_queries.md"))
    if args.profile:
        print("profile ->", profile(token, info, args.profile, args.requests, OUT / f"api_profile_{args.profile.split()[0]}.txt"))
    if args.explain or args.profile:
        return

    if args.quiet_load:
        deadline = time.time() + args.quiet_wait
        while os.getloadavg()[0] >= args.quiet_load and time.time() < deadline:
            time.sleep(10)
        mach["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        mach["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        print(f"load now {mach['load_avg']}", flush=True)
    chosen = [s for s in scenarios(info) if not args.only or s.name.startswith(args.only)]
    results: list[Result] = []
    if args.transport in ("both", "in-process"):
        fetch = in_process_fetcher(token)
        for sc in chosen:
            results.append(measure("in-process", fetch, sc, args.requests, seed=sc.seed))
            print(json.dumps(results[-1].row()), flush=True)
    if args.transport in ("both", "http"):
        with AsgiServer(env, token, args.server) as server:
            for sc in chosen:  # other ids than in-process: a first open must really be the first
                results.append(measure("http", server.fetch, sc, args.requests, seed=1000 + sc.seed))
                print(json.dumps(results[-1].row()), flush=True)

    if args.transport == "wsgi":
        with WsgiServer(token) as server:
            for sc in chosen:
                results.append(measure("wsgi", server.fetch, sc, args.requests, seed=2000 + sc.seed))
                print(json.dumps(results[-1].row()), flush=True)
        for r in results:
            print(f"{r.name[:60]:60s} wsgi p50 {fmt(r.pct(50))} p95 {fmt(r.pct(95))} errors {r.errors}")
        return
    mach["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {"machine": mach, "database": {k: v for k, v in info.items() if k != "ten_second_ids"},
              "cold_start_seconds": cold_s, "requests": args.requests, "debug": args.debug,
              "results": [r.row() for r in results]}
    (OUT / ("api_latency.json" if args.conn_max_age is None else f"api_latency_conn{args.conn_max_age}.json")).write_text(json.dumps(report, indent=1))
    section = markdown(report["results"], info, mach, args.requests, args.debug, cold_s)
    print(section)
    if args.write_docs:
        write_docs_section(section)
        print(f"wrote the API section of {DOCS}")


if __name__ == "__main__":
    main()
