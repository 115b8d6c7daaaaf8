"""Where a request's server CPU goes: a sampling profile of one Skillrun worker under load.

    python bench/profiler.py [--target execute|stream|both] [--seconds 5] [--db PATH] [--tree]

Needs pyinstrument (``pip install pyinstrument``; no test uses it, so it is in no extra).
Sampled wall time under a profiler: compare areas within one profile, and profiles
taken one after the other, not absolute figures (the profiler roughly triples them).

The server (one uvicorn process, SQLite store) runs under pyinstrument; the profile
covers only the load window (started and stopped by signals), not start-up. The
load is bench/_loadclient.py in its own process:

  execute  text.summarize at concurrency 16 for --seconds
  stream   --streams (default 1,000) simultaneous demo.ticker stream starts (2 steps)

Printed per target: requests served, CPU-seconds sampled, and the self time of each
area of code in microseconds per request, largest first (so "connexion 310 us" means
connexion's own frames took 310 us of CPU for each request), then the hottest functions.
``--tree`` also prints pyinstrument's call tree.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stream import KEY, TEXT, free_port, load, wait_up  # noqa: E402

# Areas by path fragment, first match wins: what a request's microseconds are spent in.
AREAS = [
    ("skillrun/handlers", "skillrun handlers"),
    ("skillrun/runs/sqlite", "skillrun runs.sqlite"),
    ("skillrun/runs", "skillrun runs (manager, follow, writer)"),
    ("skillrun/engine", "skillrun engine"),
    ("skillrun/capabilities", "skillrun capabilities (the text work)"),
    ("skillrun/events", "skillrun events"),
    ("skillrun/observe", "skillrun observe (metrics, logs, spans)"),
    ("skillrun/validation", "skillrun validation"),
    ("skillrun/", "skillrun edge (middleware: auth, ratelimit, cors, ...)"),
    ("connexion/", "connexion"),
    ("starlette/", "starlette"),
    ("uvicorn/", "uvicorn + httptools"),
    ("jsonschema", "jsonschema"),
    ("limits/", "limits (rate limiter)"),
    ("sqlite3", "sqlite3"),
    ("asyncio/", "asyncio"),
    ("prometheus_client", "prometheus_client"),
    ("opentelemetry", "opentelemetry"),
    ("json/", "json"),
    ("logging/", "logging"),
]


def area_of(path: str | None) -> str:
    if not path:
        return "(native / idle)"
    for fragment, name in AREAS:
        if fragment in path:
            return name
    return "other: " + "/".join(Path(path).parts[-2:])


# --- the server side: run skillrun under pyinstrument, profiling between SIGUSR1 and SIGUSR2 ---

def serve(port: int, out: str) -> None:
    from pyinstrument import Profiler

    from skillrun.cli import main as skillrun_main

    profiler = Profiler(interval=0.0002, async_mode="disabled")
    gc_time = [0.0, 0.0, 0.0]  # seconds in collections of each generation, while profiling
    gc_count = [0, 0, 0]
    gc_began = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_began[0] = time.perf_counter()
        elif profiler.is_running:
            gc_time[info["generation"]] += time.perf_counter() - gc_began[0]
            gc_count[info["generation"]] += 1

    gc.callbacks.append(on_gc)

    def start(_sig: int, _frame: Any) -> None:
        profiler.start()

    def stop(_sig: int, _frame: Any) -> None:
        session = profiler.stop()
        Path(out + ".gc.json").write_text(json.dumps({"time": gc_time, "count": gc_count}))
        # The tree first: the driver waits for the .json, written last.
        Path(out + ".txt").write_text(profiler.output_text(unicode=False, color=False))
        Path(out + ".json").write_text(json.dumps(summarise(session.root_frame())))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    skillrun_main(["serve", "--port", str(port), "--log-level", "warning"])


def summarise(root: Any) -> dict[str, Any]:
    areas: dict[str, float] = collections.Counter()
    funcs: dict[str, float] = collections.Counter()
    total = 0.0
    stack = [root] if root is not None else []
    while stack:
        frame = stack.pop()
        stack.extend(frame.children)
        own = frame.total_self_time if hasattr(frame, "total_self_time") else frame.self_time
        if not own:
            continue
        # pyinstrument's synthetic frames ([self], [await]...) belong to their parent.
        real = frame if frame.file_path else frame.parent
        path = real.file_path if real is not None else None
        if path and "pyinstrument" in path:
            continue
        total += own
        areas[area_of(path)] += own
        name = f"{real.function} ({Path(path).parent.name}/{Path(path).name}:{real.line_no})" if path else "?"
        funcs[name] += own
    return {"total": total, "areas": dict(areas), "funcs": dict(funcs)}


# --- the driver ---

def profile(target: str, args: argparse.Namespace, tmp: Path) -> None:
    port = free_port()
    out = str(tmp / f"profile-{target}")
    env = {
        **os.environ,
        "SKILLRUN_API_KEYS": KEY,
        "SKILLRUN_RATE_LIMIT": "100000000/minute",
        "SKILLRUN_DB": args.db or str(tmp / f"{target}.db"),
    }
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), out], env=env, cwd=tmp)
    try:
        wait_up(f"http://127.0.0.1:{port}/v1/health/live", proc)
        auth = {"x-api-key": KEY}
        # Warm up: first requests compile schemas, open the store...
        load("execute", port, "/v1/skills/text.summarize/execute", {"inputs": {"text": TEXT}}, 4, 1, headers=auth)
        load("stream", port, "/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": 2}}, 50, headers=auth)
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        if target == "execute":
            r = load("execute", port, "/v1/skills/text.summarize/execute",
                     {"inputs": {"text": TEXT, "max_sentences": 2}}, 16, args.seconds, headers=auth)
            n, what = r["requests"], f"{r['requests'] / r['wall']:,.0f} req/s"
        else:
            r = load("stream", port, "/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": 2}},
                     args.streams, headers=auth)
            ttfe = r["ttfe"]
            n = r["ok"]
            what = f"first event p50/p95 {ttfe[len(ttfe) // 2] * 1000:.0f}/{ttfe[int(len(ttfe) * .95)] * 1000:.0f} ms"
        assert r["errors"] == 0, r
        proc.send_signal(signal.SIGUSR2)
        for _ in range(100):
            if Path(out + ".json").exists():
                break
            time.sleep(0.1)
        time.sleep(0.3)
        report(target, n, what, json.loads(Path(out + ".json").read_text()), args.top)
        collections_ = json.loads(Path(out + ".gc.json").read_text())
        print("  garbage collections (gen 0/1/2): " + ", ".join(
            f"{c} taking {t / n * 1e6:,.0f} us a request" for c, t in zip(collections_["count"], collections_["time"])))
        if args.tree:
            print(Path(out + ".txt").read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(target: str, n: int, what: str, summary: dict[str, Any], top: int) -> None:
    total = summary["total"]
    print(f"== {target}: {n} requests ({what}); {total:.2f} CPU-s sampled, {total / n * 1e6:,.0f} us per request")
    for name, t in sorted(summary["areas"].items(), key=lambda kv: -kv[1]):
        if t / n * 1e6 >= 5:
            print(f"  {t / n * 1e6:8,.0f} us  {100 * t / total:4.1f}%  {name}")
    print(f"  hottest functions (self time per request):")
    for name, t in sorted(summary["funcs"].items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {t / n * 1e6:8,.0f} us  {name}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=["execute", "stream", "both"], default="both")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--db", default=None, help="SKILLRUN_DB (default: a new SQLite file)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--tree", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skillrun-profile-") as tmp:
        for target in (["execute", "stream"] if args.target == "both" else [args.target]):
            profile(target, args, Path(tmp))


if __name__ == "__main__":
    main()
