"""Stalls of a live stream while the SQLite store checkpoints its WAL.

    python bench/checkpoint.py [--streams 20] [--steps 10000]

``--streams`` 10,000-step demo.ticker streams back to back (a store that never goes
idle) through bench/inproc.py's ASGI app, the heap settled as ``skillrun serve``
settles it; for each, the longest time between two of its sends. Measured three
times in the same run: with the store's checkpoints put off past the run (the
baseline: a stream's own cadence), with checkpoints (every second) at Python's
5 ms switch interval, and with checkpoints as ``skillrun serve`` runs (1 ms:
``cli._prompt_thread_handoffs``). Printed: the median and the worst stall of
each, how many streams stalled, and the worst's ratio to the baseline's worst.

Until the copy of the WAL ran beside the commits (runs/sqlite.py), every commit
waited out each whole checkpoint: streams stopped for 140-280 ms once a second.
At the 5 ms switch interval the pause after the copy began 16-126 ms late: its
thread waited that long for the GIL behind the busy loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inproc import call, lifespan, make_app, run  # noqa: E402


async def stalls(db: str, streams: int, steps: int) -> list[float]:
    from skillrun.cli import _settle_the_heap

    app = make_app(db, SKILLRUN_WORKER_PROCS="0")
    body = json.dumps({"inputs": {"steps": steps}}).encode()
    path = "/v1/skills/demo.ticker/execute/stream"
    longest: list[float] = []
    async with lifespan(app):
        _settle_the_heap()  # as ``skillrun serve`` does
        await call(app, "POST", path, body)  # warm-up
        for _ in range(streams):
            clock: list[float] = []
            await call(app, "POST", path, body, clock)
            longest.append(max(b - a for a, b in zip(clock, clock[1:])) * 1000)
    return longest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--steps", type=int, default=10_000)
    args = ap.parse_args()
    from skillrun.cli import _prompt_thread_handoffs
    from skillrun.runs import sqlite

    kwdefaults = sqlite.SqliteStore.__init__.__kwdefaults__
    default = kwdefaults["checkpoint_s"]
    _prompt_thread_handoffs()  # as ``skillrun serve`` does
    served = sys.getswitchinterval()
    results = {}
    for name, every, interval in (
        ("no checkpoint", 3600.0, served),
        ("checkpoints, Python's switch interval", default, 0.005),
        ("checkpoints, as served", default, served),
    ):
        kwdefaults["checkpoint_s"] = every
        sys.setswitchinterval(interval)
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = got = run(stalls(str(Path(tmp) / "b.db"), args.streams, args.steps))
        kwdefaults["checkpoint_s"] = default
        print(f"{name:>38}: a stream's longest gap between sends, median {statistics.median(got):.1f} ms, "
              f"worst {max(got):.1f} ms  ({' '.join(f'{g:.0f}' for g in got)})")
    base = results["no checkpoint"]
    over = 3 * statistics.median(base)
    for name, got in list(results.items())[1:]:
        print(f"{name:>38}: streams with a stall over {over:.0f} ms (3x the baseline's median) "
              f"{sum(g > over for g in got)} of {len(got)} (baseline {sum(g > over for g in base)}); "
              f"worst / baseline's worst {max(got) / max(base):.1f}x")


if __name__ == "__main__":
    main()
