"""Utility capabilities for demos and tests: sleep, echo, a deliberate failure."""

from __future__ import annotations

import asyncio
from typing import Any

from ..engine.capability import Capability, CapabilityError


async def _sleep(args: dict[str, Any]) -> dict[str, Any]:
    ms = args.get("ms", 0)
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


async def _echo(args: dict[str, Any]) -> dict[str, Any]:
    return dict(args)


async def _fail(args: dict[str, Any]) -> dict[str, Any]:
    raise CapabilityError(args.get("message") or "failed on purpose", kind=args.get("kind") or "capability_error")


CAPABILITIES = [
    Capability(
        "util.sleep",
        _sleep,
        "Wait `ms` milliseconds.",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": 3_600_000}},
        },
        {"type": "object", "properties": {"slept_ms": {"type": "integer"}}},
    ),
    Capability("util.echo", _echo, "Return the input as the output."),
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
