"""``human.input``: a step that waits for a person's answer.

The step announces ``step_waiting`` (its ``prompt``, the answer's ``schema``, when
the wait expires, where to answer) and the run is ``waiting`` until an answer
arrives through ``POST /v1/runs/{run_id}/input``; the step then completes with the
answer as its output (an object answer as it is, any other value as ``{value}``).
Past ``timeout`` the step fails with kind ``timeout`` and its ``on_error`` applies.
It only waits, so it holds no capability slot.
"""

from __future__ import annotations

from typing import Any

from ..durations import parse_duration
from ..engine.capability import Capability, CapabilityError, wait_for_input


async def _input(args: dict[str, Any]) -> dict[str, Any]:
    timeout = args.get("timeout")
    try:
        timeout_s = parse_duration(timeout, "timeout") if timeout is not None else None
    except ValueError as exc:
        raise CapabilityError(str(exc), kind="input_invalid") from None
    if timeout_s is not None and timeout_s <= 0:
        raise CapabilityError("timeout: must be more than 0", kind="input_invalid")
    value = await wait_for_input(str(args["prompt"]), dict(args.get("schema") or {}), timeout_s)
    return value if isinstance(value, dict) else {"value": value}


CAPABILITIES = [
    Capability(
        "human.input",
        _input,
        "Wait for a person's answer to `prompt` (a value matching `schema`, an OpenAPI 3.0 "
        "schema) through `POST /v1/runs/{run_id}/input`; fails with kind `timeout` after "
        "`timeout` (seconds, or a duration such as `15m`, `2d`). The output is the answer "
        "(an answer that is not an object: `{value: answer}`).",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["prompt", "schema"],
            "properties": {
                "prompt": {"type": "string", "minLength": 1},
                "schema": {"type": "object"},
                "timeout": {"type": ["number", "string"]},
            },
        },
        {"type": "object"},
        holds_slot=False,  # it only waits: a waiting run must not keep others' calls out
        error_kinds=frozenset({"input_invalid"}),
    ),
]
