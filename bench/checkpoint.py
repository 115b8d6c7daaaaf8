"""Stalls of a live stream while the SQLite store checkpoints its WAL.

    python bench/checkpoint.py [--streams 15] [--steps 10000]

``--streams`` 10,000-step demo.ticker streams back to back (a store that never goes
idle) through bench/inproc.py's ASGI app; for each, the longest time between two of
its sends. Measured twice in the same run: with the store's checkpoints (every
second), and with them put off past the run (the baseline: a stream's own cadence).
Printed: the median and the worst stall of each, and the worst's ratio to the
baseline's worst.

Until the copy of the WAL ran beside the commits (runs/sqlite.py), every commit
waited out each whole checkpoint: the stream stopped for 140-250 ms once a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inproc import KEY, call, lifespan  # noqa: E402


async def stalls(db: str, streams: int, steps: int) -> list[float]:
    os.environ.update(SKILLRUN_WORKER_PROCS="0", SKILLRUN_API_KEYS=KEY, SKILLRUN_RATE_LIMIT="100000000/minute",
                      SKILLRUN_DB=db)
    from skillrun.cli import _settle_the_heap
    from skillrun.http.app import create_app
    from skillrun.settings import Settings

    app = create_app(Settings.from_env())
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
    ap.add_argument("--streams", type=int, default=15)
    ap.add_argument("--steps", type=int, default=10_000)
    args = ap.parse_args()
    from skillrun.runs import sqlite

    default = sqlite.SqliteStore.__init__.__kwdefaults__["checkpoint_s"]
    results = {}
    for name, every in (("no checkpoint", 3600.0), ("checkpoints", default)):
        sqlite.SqliteStore.__init__.__kwdefaults__["checkpoint_s"] = every
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = asyncio.run(stalls(str(Path(tmp) / "b.db"), args.streams, args.steps))
        sqlite.SqliteStore.__init__.__kwdefaults__["checkpoint_s"] = default
        got = results[name]
        print(f"{name:>14}: longest gap between a stream's sends, median {statistics.median(got):.1f} ms, "
              f"worst {max(got):.1f} ms  ({' '.join(f'{g:.0f}' for g in got)})")
    base, got = results["no checkpoint"], results["checkpoints"]
    over = 3 * statistics.median(base)
    print(f"streams with a stall over {over:.0f} ms (3x the baseline's median): "
          f"{sum(g > over for g in got)} of {len(got)} with checkpoints, {sum(g > over for g in base)} without; "
          f"worst stall with checkpoints / without: {max(got) / max(base):.1f}x")


if __name__ == "__main__":
    main()
