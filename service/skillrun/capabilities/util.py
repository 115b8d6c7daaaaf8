"""Utility capabilities for demos and tests: sleep, echo, a deliberate failure, a flaky one."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable

from ..engine.capability import Capability, CapabilityError, emit_delta, run_state


def _sleep(args: dict[str, Any]) -> Awaitable[dict[str, Any]]:
    ms = args.get("ms", 0)
    if ms > 0 and args.get("progress") is None:
        # asyncio's sleep itself, which returns the output: no coroutine of ours
        # around it (a run waiting here holds every frame above it; bench/stream.py (d)).
        return asyncio.sleep(ms / 1000, {"slept_ms": ms})
    return _sleep_and_report(ms, args.get("progress"))


async def _sleep_and_report(ms: int, progress: float | None) -> dict[str, Any]:
    if ms > 0:  # 0 is no wait at all; the engine gives the loop its turns
        await asyncio.sleep(ms / 1000)
    if progress is not None:  # e.g. demo.ticker's items: how far the whole is
        emit_delta(progress=progress)
    return {"slept_ms": ms}


async def _echo(args: dict[str, Any]) -> dict[str, Any]:
    return dict(args)


async def _fail(args: dict[str, Any]) -> dict[str, Any]:
    raise CapabilityError(args.get("message") or "failed on purpose", kind=args.get("kind") or "capability_error")


async def _flaky(args: dict[str, Any]) -> dict[str, Any]:
    # Counted per run: two runs at once with the same key each fail their own times.
    failures = run_state("util.flaky")
    key = str(args.get("key", ""))
    seen = failures.get(key, 0)
    if seen < int(args.get("fail_times", 1)):
        failures[key] = seen + 1
        raise CapabilityError(f"flaky failure {seen + 1} for {key!r}", kind=args.get("kind") or "capability_error")
    failures.pop(key, None)
    return {"attempts": seen + 1, "value": args.get("value")}


CAPABILITIES = [
    Capability(
        "util.sleep",
        _sleep,
        "Wait `ms` milliseconds; then, with `progress`, report it as a `step_delta`.",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ms": {"type": "integer", "minimum": 0, "maximum": 3_600_000},
                "progress": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                             "description": "Progress to report once the wait is over (null: none)."},
            },
        },
        {"type": "object", "additionalProperties": False, "properties": {"slept_ms": {"type": "integer"}}},
        holds_slot=False,  # it only waits: a sleeping run must not keep others' calls out
        error_kinds=frozenset(),
    ),
    Capability("util.echo", _echo, "Return the input as the output.", error_kinds=frozenset()),
    Capability(
        "util.flaky",
        _flaky,
        "Fail `fail_times` times per `key` within a run, then return `value` (for retries).",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "key": {"type": "string"},
                "fail_times": {"type": "integer", "minimum": 0, "maximum": 100},
                "kind": {"type": "string"},
                "value": {},
            },
        },
        {"type": "object", "additionalProperties": False, "properties": {"attempts": {"type": "integer"}, "value": {}}},
    ),
    Capability(
        "util.fail",
        _fail,
        "Fail on purpose with `message` (and error `kind`).",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"message": {"type": "string"}, "kind": {"type": "string"}},
        },
    ),
]
