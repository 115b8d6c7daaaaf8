"""The engine's cost per foreach item in CPU instructions: a count that the machine's load does not change.

    python bench/instructions.py [--items 2000] [--skill service/skillrun/skills/demo.ticker.yaml] [--pipeline | --start]

Timed benchmarks on this shared 2-core machine vary by up to 2x from run to run,
which hides a change of 5-10%. Instructions do not vary: each side runs under
valgrind's cachegrind (``apt-get install valgrind``; no test needs it) twice, with
200 and 200 + ``--items`` items. The difference, divided by ``--items``, is the cost
of one item without start-up or imports. To compare two commits, run this in a
worktree of each.

Measured in the same run, one process each:

  engine    ``Engine.run`` of the skill (demo.ticker: one ``util.sleep`` step with
            ``foreach``, two events an item), its events appended to a list
  floor     a loop that does the least the same run needs: the two events of each
            item (their dicts and messages, appended to a list) and the awaited
            capability call, nothing else

The engine gives the loop no turns here (``SLICE_S`` raised): a turn's cost depends
on time, which valgrind slows 50x. The ratio engine / floor is printed.

``--pipeline`` counts the whole server's work an event instead: bench/inproc.py's
``long`` case (10,000-step ``demo.ticker`` streams, as bench/stream.py (a), through the
ASGI app, the SQLite store's group commits, the writer, the follower and the SSE frames),
one stream against two, the difference divided by a stream's 20,003 events. The engine's slices are
scaled to valgrind's pace, so commits and writes take a real run's few hundred events.
Instructions spent by the kernel (SQLite's writes, the socket) are not counted.

``--start`` counts a stream start instead (bench/stream.py (b)'s cost per stream,
without its ticks): ``--items`` one-step ``demo.ticker`` streams through the app, read
to their end, 16 at a time (bench/inproc.py's ``stream`` case), against none, divided
by their number; and the same for the bare app's (bench/_bare.py) one-event streams.
Measured (``--items 400``): 1,744,202 instructions a Skillrun stream start before the
work of issue 12's stop 27 (a624f77), 1,433,927 after (7a98c32); the bare app's 533,383
(ratio 3.27, then 2.69). ``--pipeline`` over the same work: 47,502 and 47,566 an event.
Stop 28: 1,443,707 before (cf255e5), 1,401,306 after (the SSE head encoded once, the
run count's trigger gone); ``--pipeline`` 47,358. Its larger gain, the collector's
pacing, shows in a burst (bench/stream.py (b)), not here: 16 streams at a time never
grow the heap enough to bring a collection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVICE = HERE.parent / "service"


async def _engine(skill_path: str, n: int) -> None:
    from skillrun.capabilities import builtin_registry
    from skillrun.engine import Engine
    from skillrun.engine import runner
    from skillrun.engine.loader import parse_skill

    runner.SLICE_S = 1e9  # no turns (see the module docstring)
    registry = builtin_registry()
    skill = parse_skill(Path(skill_path).read_text(), skill_path, registry)
    events: list[tuple[str, str, str | None, dict | None]] = []

    class Emitter:
        def emit(self, type: str, message: str, step_id: str | None = None, data: dict | None = None) -> None:
            events.append((type, message, step_id, data))

    outcome = await Engine(registry).run(skill, {"steps": n}, Emitter(), channel="bench")
    assert outcome.status == "completed", outcome.error


async def _floor(_skill_path: str, n: int) -> None:
    from skillrun.capabilities import builtin_registry

    sleep = builtin_registry().get("util.sleep")
    assert sleep is not None
    events: list[tuple[str, str, str | None, dict | None]] = []
    step_id, uses = "tick", "util.sleep"
    for index in range(n):
        events.append(("step_start", f"Starting step '{step_id}'.", step_id,
                       {"uses": uses, "index": index, "items": n}))
        output = await sleep.fn({"ms": 0, "progress": None})
        events.append(("step_completed", f"Step '{step_id}' completed.", step_id,
                       {"produced_output": output, "duration_ms": 0.001, "index": index}))


async def _pipeline(_skill_path: str, streams: int) -> None:
    """The whole server in one process: ``streams`` of bench/inproc.py's ``long`` case
    (``PIPELINE_STEPS`` steps each) through the ASGI app, SQLite store, writer, follower
    and SSE, after two to warm up; ``--pipeline`` takes the difference of two counts."""
    import tempfile

    from inproc import call, lifespan, make_app

    from skillrun.engine import runner

    # The engine's slices counted, not timed: its clock (``runner.time``) advances a fixed
    # step at each reading, so every run slices the same way whatever valgrind's pace and
    # the machine's load (a group commit and an SSE write then take ~330 events, as in a
    # real run), and the count is the same from run to run.
    runner.time = _Ticks()  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="skillrun-instructions-") as tmp:
        from skillrun.cli import _settle_the_heap

        app = make_app(f"{tmp}/pipeline.db", SKILLRUN_WORKER_PROCS="0")
        # The WAL's checkpoint runs on a thread of its own every second of (valgrind's slow)
        # time: not counted (it is disk work off the loop, and its count would vary).
        app.services.store.checkpoint_s = 1e9
        path, body = "/v1/skills/demo.ticker/execute/stream", f'{{"inputs": {{"steps": {PIPELINE_STEPS}}}}}'.encode()
        async with lifespan(app):
            for n in range(2 + streams):
                sent = await call(app, "POST", path, body)
                if n == 1:  # warm: as ``skillrun serve`` does before serving
                    _settle_the_heap()
            text = b"".join(m.get("body", b"") for m in sent)
            assert text.count(b"\nevent: ") + text.startswith(b"event: ") == 2 * PIPELINE_STEPS + 3
            print(f"SSE writes a stream: {len(sent) - 2}", file=sys.stderr)


PIPELINE_STEPS = 10_000  # bench/stream.py (a)'s stream


async def _starts(side: str, n: int) -> None:
    """``n`` stream starts, 16 at a time, through the ASGI app (after 200 to warm up):
    Skillrun's one-step ``demo.ticker`` streams read to their end (bench/inproc.py's
    ``stream`` case), or the bare app's (bench/_bare.py) one-event streams; ``--start``
    takes the difference of two counts."""
    import tempfile

    from inproc import call, lifespan, make_app

    with tempfile.TemporaryDirectory(prefix="skillrun-instructions-") as tmp:
        from skillrun.cli import _settle_the_heap

        if side == "start":
            app = make_app(f"{tmp}/starts.db", SKILLRUN_WORKER_PROCS="0")
            app.services.store.checkpoint_s = 1e9  # as in ``_pipeline``: off the loop, not counted
            path, body = "/v1/skills/demo.ticker/execute/stream", b'{"inputs": {"steps": 1}}'
        else:
            import _bare

            app, path, body = _bare.app, "/stream", b'{"inputs": {"events": 1}}'

        async def starts(count: int) -> None:
            for _ in range(count):
                sent = await call(app, "POST", path, body)
                assert sent[0]["status"] == 200, sent[:2]

        async with lifespan(app):
            await asyncio.gather(*(starts(200 // 16) for _ in range(16)))
            _settle_the_heap()
            await asyncio.gather(*(starts(n // 16) for _ in range(16)))


class _Ticks:
    """``time`` for the engine's module: ``perf_counter`` advances 6 µs a reading (the
    engine reads it once an item: a 2 ms slice is ~330 events)."""

    def __init__(self) -> None:
        import time

        self._time = time
        self.now = time.perf_counter()

    def perf_counter(self) -> float:
        self.now += 6e-6
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(self._time, name)


def _instructions(side: str, skill: str, n: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(SERVICE)}
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--run", side, "--skill", skill, "--items", str(n)],
        env=env, capture_output=True, text=True, check=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if found is None:
        raise SystemExit(out.stderr[-2000:])
    return int(found.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--skill", default=str(SERVICE / "skillrun/skills/demo.ticker.yaml"))
    ap.add_argument("--pipeline", action="store_true",
                    help="the whole server's instructions an event instead (bench/inproc.py's long case)")
    ap.add_argument("--start", action="store_true",
                    help="the whole server's instructions a stream start instead, against the bare app's")
    ap.add_argument("--run", choices=["engine", "floor", "pipeline", "start", "bare"], help=argparse.SUPPRESS)  # the measured process
    args = ap.parse_args()
    per: dict[str, float] = {}
    if args.run:
        sys.path.insert(0, str(SERVICE))
        sides = {"engine": _engine, "floor": _floor, "pipeline": _pipeline, "start": _starts, "bare": _starts}
        from inproc import run  # the loop ``skillrun serve`` runs on

        run(sides[args.run](args.run if args.run in ("start", "bare") else args.skill, args.items))
        return
    if args.start:
        for side in ("start", "bare"):
            base, more = _instructions(side, args.skill, 0), _instructions(side, args.skill, args.items)
            per[side] = (more - base) / (args.items // 16 * 16)
            print(f"{side:7s} {per[side]:9,.0f} instructions a stream start")
        print(f"start / bare: {per['start'] / per['bare']:.2f}")
        return
    if args.pipeline:
        events = 2 * PIPELINE_STEPS + 3
        one, two = _instructions("pipeline", args.skill, 1), _instructions("pipeline", args.skill, 2)
        print(f"pipeline {(two - one) / events:9,.0f} instructions an event "
              f"(a {PIPELINE_STEPS:,}-step demo.ticker stream through the app, store and SSE)")
        return
    for side in ("engine", "floor"):
        base, more = _instructions(side, args.skill, 200), _instructions(side, args.skill, 200 + args.items)
        per[side] = (more - base) / args.items
        print(f"{side:7s} {per[side]:9,.0f} instructions an item")
    print(f"engine / floor: {per['engine'] / per['floor']:.2f}")


if __name__ == "__main__":
    main()
