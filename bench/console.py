"""Console benchmark: the longest main-thread task while the web console shows a large run.

    python bench/console.py [--steps N] [--quick]

A real ``skillrun serve``; headless Chromium (playwright-core, console/node_modules)
opens ``/ui/runs/{id}`` of a ``demo.ticker`` run of N items (2N + 3 events) and a
``PerformanceObserver`` records every long task (> 50 ms) until the page shows ``done``
and its (virtualised) timeline holds one row per event (``data-rows``); it also prints
how many rows are in the DOM then. The baseline is the same page for a 100-item run,
measured in the same run; aim: the longest task <= 200 ms at N = 10,000.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KEY = "bench-console-key-0123"
CONSOLE = Path(__file__).resolve().parent.parent / "console"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 items instead")
    args = parser.parse_args()
    steps = 1_000 if args.quick else args.steps
    node = shutil.which("node")
    if node is None or not (CONSOLE / "node_modules" / "playwright-core").is_dir():
        sys.exit("needs node and `npm ci` in console/")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SKILLRUN_API_KEYS": KEY, "SKILLRUN_RATE_LIMIT": "1000000/minute", "SKILLRUN_DB": ":memory:"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "skillrun", "serve", "--port", str(port)],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    httpx.get(url + "/v1/health/live", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            out = subprocess.run(
                [node, "bench/longtask.mjs", "100", str(steps)], cwd=CONSOLE, check=True, capture_output=True, text=True,
                env={**os.environ, "SKILLRUN_URL": url, "SKILLRUN_KEY": KEY},
            ).stdout  # fmt: skip
        finally:
            proc.kill()
            proc.wait()
    base, big = (json.loads(line) for line in out.splitlines() if line.startswith("{"))
    for r in (base, big):
        print(f"{r['steps']:>6} items  {r['events']:>6} events  longest task {r['longest_task_ms']:>5} ms  "
              f"long tasks {r['long_tasks']:>4}  shown in {r['shown_ms']} ms  rows in the DOM {r.get('rows_in_dom', '?')}")
    # Long tasks start at 50 ms, so the baseline is often 0: the ratio is against 50 ms then.
    ratio = big["longest_task_ms"] / max(base["longest_task_ms"], 50)
    print(f"longest task, {big['steps']} vs {base['steps']} items: x{ratio:.2f} of max(baseline, 50 ms); "
          f"aim {big['longest_task_ms']} ms <= 200 ms: {'met' if big['longest_task_ms'] <= 200 else 'MISSED'}")


if __name__ == "__main__":
    main()
