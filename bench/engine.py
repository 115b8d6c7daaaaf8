"""Engine overhead per step, against calling the same capabilities in a plain loop.

    python bench/engine.py [--scale 0.1] [--repeat 5]

Both sides run in this process, in the same run, on the same event loop:

  (a) a chain of 10,000 steps (each needs the one before; ``util.echo``)
  (b) one step with ``foreach`` over 1,000 items (``util.echo`` with ``${item}``)

The baseline awaits the capability once per step/item in a ``for`` loop. The engine
side runs the skill with an emitter that only appends each event to a list, so the
figure is the engine's own cost per step: scheduling, templates and CEL, the two
events per step, summaries, slots. Aim: <= 50 µs per step. The best of
``--repeat`` runs is taken on both sides (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))

from skillrun.capabilities import builtin_registry  # noqa: E402
from skillrun.engine import Engine, Skill  # noqa: E402
from skillrun.engine.loader import parse_skill  # noqa: E402

TARGET_US = 50.0


class ListEmitter:
    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, dict[str, Any] | None]] = []

    def emit(self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.events.append((type, step_id, data))


def chain_skill(n: int) -> str:
    lines = ["id: bench.chain", 'version: "1"', "steps:"]
    lines += [f"  - {{id: s{i}, uses: util.echo, input: {{v: {i}}}}}" for i in range(n)]
    return "\n".join(lines)


def foreach_skill(n: int) -> str:
    return "\n".join(
        [
            "id: bench.foreach",
            'version: "1"',
            "steps:",
            f"  - {{id: each, uses: util.echo, foreach: 'range({n})', input: {{v: '${{item}}'}}}}",
        ]
    )


async def best_of(repeat: int, fn: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return min(times)


async def measure(name: str, skill: Skill, steps: int, baseline: Callable[[], Awaitable[Any]], repeat: int) -> dict[str, Any]:
    engine = Engine(builtin_registry())

    async def engine_run() -> None:
        emitter = ListEmitter()
        outcome = await engine.run(skill, {}, emitter, channel="bench")
        assert outcome.status == "completed", outcome.error
        assert len(emitter.events) == 2 * steps + 2, len(emitter.events)

    await engine_run()  # warm up (CEL programs, caches)
    await baseline()
    base = await best_of(repeat, baseline)
    eng = await best_of(repeat, engine_run)
    per_step_us = (eng - base) / steps * 1e6
    return {
        "case": name,
        "steps": steps,
        "baseline_s": round(base, 4),
        "engine_s": round(eng, 4),
        "overhead_us_per_step": round(per_step_us, 2),
        "ratio": round(eng / base, 1) if base else None,
        "target_met": per_step_us <= TARGET_US,
    }


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes (10,000 / 1,000)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    n_chain = max(2, int(10_000 * args.scale))
    n_items = max(2, int(1_000 * args.scale))
    registry = builtin_registry()
    echo = registry.get("util.echo")
    assert echo is not None

    t0 = time.perf_counter()
    chain = parse_skill(chain_skill(n_chain), "bench-chain.yaml", registry)
    load_s = time.perf_counter() - t0
    foreach = parse_skill(foreach_skill(n_items), "bench-foreach.yaml", registry)

    async def chain_loop() -> None:
        for i in range(n_chain):
            await echo.fn({"v": i})

    async def foreach_loop() -> None:
        out = []
        for item in range(n_items):
            out.append(await echo.fn({"v": item}))

    results = [
        await measure(f"chain of {n_chain} steps", chain, n_chain, chain_loop, args.repeat),
        await measure(f"foreach over {n_items} items", foreach, n_items, foreach_loop, args.repeat),
    ]
    if args.json:
        print(json.dumps({"load_chain_s": round(load_s, 3), "results": results}))
    else:
        print(f"loading the {n_chain}-step skill (YAML, schema, DAG, CEL): {load_s:.3f} s")
        print(f"{'case':<28}{'plain loop':>12}{'engine':>10}{'overhead/step':>16}{'target':>10}")
        for r in results:
            print(
                f"{r['case']:<28}{r['baseline_s']:>11.4f}s{r['engine_s']:>9.4f}s"
                f"{r['overhead_us_per_step']:>13.2f} µs{'  ok' if r['target_met'] else '  MISSED':>10}"
            )
        print(f"(target: <= {TARGET_US:g} µs per step; best of {args.repeat} runs each)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
