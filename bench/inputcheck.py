"""The cost of checking rendered capability inputs against their schemas, per call.

    python bench/inputcheck.py [--quick]

Measured in the same run:

  (a) ``InputCheck.problem`` alone, per call, for typical inputs (``http.request``
      as web.summarize renders it, ``util.flaky``, ``text.keywords`` with 10 KB and
      1 MB of text), against a baseline of a plain Python call taking the same dict;
  (b) a chain of steps calling ``util.flaky`` (a schema with four properties), with
      the check and with it stubbed out: the check's share of a step's cost.

Aim: a few µs per call for ordinary inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))

from skillrun.capabilities import builtin_registry  # noqa: E402
from skillrun.engine import Capability, Engine  # noqa: E402
from skillrun.engine.inputcheck import InputCheck  # noqa: E402
from skillrun.engine.loader import parse_skill  # noqa: E402


class _NoCheck(InputCheck):
    def problem(self, cap: Capability, args: dict[str, Any]) -> str | None:
        return None


class _Drop:
    def emit(self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None) -> None:
        pass


def per_call_us(fn: Callable[[], Any], n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def direct(n: int) -> None:
    reg = builtin_registry()
    check = InputCheck()
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("http.request (web.summarize)", "http.request", {
            "url": "https://example.com/a/page", "headers": {"accept": "text/plain, text/html;q=0.9, */*;q=0.1"},
            "max_bytes": 2_000_000, "follow_redirects": True}, n),
        ("util.flaky", "util.flaky", {"key": "k", "fail_times": 0, "value": 3}, n),
        ("text.keywords, 10 KB", "text.keywords", {"text": "word " * 2_000, "limit": 5}, n),
        ("text.keywords, 1 MB", "text.keywords", {"text": "word " * 200_000, "limit": 5}, max(10, n // 100)),
    ]

    def baseline_fn(args: dict[str, Any]) -> Any:
        return args.get("url")

    print(f"{'input':32} {'check µs':>9} {'baseline µs':>12} {'ratio':>7}")
    for label, name, args, count in cases:
        cap = reg.get(name)
        assert cap is not None and check.problem(cap, args) is None, (name, check.problem(cap, args) if cap else None)
        cost = per_call_us(lambda: check.problem(cap, args), count)
        base = per_call_us(lambda: baseline_fn(args), count)
        print(f"{label:32} {cost:9.2f} {base:12.3f} {cost / base:6.1f}x")


async def chain(steps: int, repeat: int) -> None:
    lines = ["id: bench.chain", 'version: "1"', "steps:"]
    lines += [f"  - {{id: s{i}, uses: util.flaky, input: {{key: 'k{i}', fail_times: 0, value: {i}}}}}" for i in range(steps)]
    skill = parse_skill("\n".join(lines), "bench.yaml", builtin_registry())
    results = {}
    for label, check in (("without check", _NoCheck()), ("with check", InputCheck())):
        engine = Engine(builtin_registry())
        engine.input_check = check
        best = float("inf")
        for _ in range(repeat):
            gc.collect()
            t0 = time.perf_counter()
            outcome = await engine.run(skill, {}, _Drop(), channel="bench")
            best = min(best, time.perf_counter() - t0)
            assert outcome.status == "completed", outcome.error
        results[label] = best / steps * 1e6
    without, with_ = results["without check"], results["with check"]
    print(f"\n{steps}-step chain of util.flaky: {without:.1f} µs/step without the check, {with_:.1f} with "
          f"(+{with_ - without:.2f} µs, {with_ / without:.3f}x)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    opts = ap.parse_args()
    direct(2_000 if opts.quick else 50_000)
    asyncio.run(chain(500 if opts.quick else 5_000, 3 if opts.quick else 5))


if __name__ == "__main__":
    main()
