"""Schemathesis hooks for the Skillrun contract (named by ``schemathesis.toml``).

- ``before_load_schema``: the spec spells ``contentMediaType``/``contentSchema`` as
  ``x-contentMediaType``/``x-contentSchema`` (connexion rejects the real keywords);
  renaming them back makes schemathesis parse every SSE frame's ``data`` as JSON and
  validate it against the ``SkillEvent`` union.
- ``sse_stream_rules``: a check on every ``text/event-stream`` answer for what a
  schema cannot say: order, ids, ``event:`` == ``data.type``, one trailing ``done``.
- ``map_case``: keeps generated ``demo.ticker`` runs small (its published limits stay
  ``steps`` 1-10000 and ``delay_ms`` 0-60000; only the values sent are folded down),
  and ties each ``Idempotency-Key`` to its request (see ``_distinct_idempotency_key``);
  generated ``demo.approval`` runs wait for their answer ``APPROVAL_TIMEOUT`` at most
  (nobody answers them: they end failed, kind ``timeout``, instead of waiting 7 days).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import schemathesis

# Loaded by file path (the toml's `hooks`), so the test helpers are not on sys.path yet.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from spec_tools import rename_content_keywords  # noqa: E402
from skillrun.conformance.sse import check_stream  # noqa: E402

SMALL_TICKER_STEPS = 12
SMALL_TICKER_DELAY_MS = 5
APPROVAL_TIMEOUT = "20ms"
_DURATION = re.compile(r"[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?")  # demo.approval's `timeout` pattern


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    rename_content_keywords(raw_schema)


# A loaded skill's own operations: `/v1/skills/<id>/execute...` with the id in the path
# (the served spec carries no routing extensions, so the path is what names the skill).
_CONCRETE_EXECUTE = re.compile(r"^/v1/skills/([^/{}]+)/execute(/stream|/async)?$")


def _skill_of(case: Any) -> str | None:
    m = _CONCRETE_EXECUTE.match(case.operation.path)
    return m.group(1) if m else (case.path_parameters or {}).get("skill_id")


def _fold(value: Any, low: int, high: int, size: int) -> Any:
    # Only in-range integers are folded, so a negative case stays exactly as invalid.
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return low + (value - low) % size
    return value


IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,200}$")


def _distinct_idempotency_key(case: Any) -> None:
    """Tie a generated ``Idempotency-Key`` to the request it comes with.

    Hypothesis sends the same few keys ("0", "A") with different bodies and skills;
    the server answers 409 to a key reused for a different request (accepted as a
    conflict), and replays the earlier run, with its trace id, for the same body sent
    to another execute endpoint, which the trace rule would read as a trace not echoed. Suffixing the key with
    a digest of the request keeps true repeats (same request, same key: a replay)
    and makes every different request's key different. Invalid keys stay as sent.
    """
    headers = case.headers or {}
    name = next((h for h in headers if h.lower() == "idempotency-key"), None)
    if name is None or not isinstance(headers[name], str) or not IDEMPOTENCY_KEY.match(headers[name]):
        return
    others = {k.lower(): v for k, v in headers.items() if k != name}
    request = json.dumps([case.method, case.formatted_path, case.body if isinstance(case.body, (dict, list, str, int, float, bool, type(None))) else repr(case.body), others],
                         sort_keys=True, default=repr)
    headers[name] = f"{headers[name]}.{hashlib.sha256(request.encode()).hexdigest()[:16]}"


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    _distinct_idempotency_key(case)
    body = case.body
    if _skill_of(case) == "demo.approval" and isinstance(body, dict) and isinstance(body.get("inputs"), dict):
        sent = body["inputs"].get("timeout", APPROVAL_TIMEOUT)
        if isinstance(sent, str) and _DURATION.fullmatch(sent):  # a broken one stays: a negative case
            body["inputs"]["timeout"] = APPROVAL_TIMEOUT
    if _skill_of(case) != "demo.ticker" or not isinstance(body, dict):
        return case
    inputs = body.get("inputs")
    if isinstance(inputs, dict):
        if "steps" in inputs:
            inputs["steps"] = _fold(inputs["steps"], 1, 10000, SMALL_TICKER_STEPS)
        if "delay_ms" in inputs:
            inputs["delay_ms"] = _fold(inputs["delay_ms"], 0, 60000, SMALL_TICKER_DELAY_MS)
    return case


def _is_event_stream(response: Any) -> bool:
    values = response.headers.get("content-type") or []
    return bool(values) and values[0].split(";")[0].strip().lower() == "text/event-stream"


@schemathesis.check
def sse_stream_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every event stream obeys the order rules of the execute_stream operation."""
    if not _is_event_stream(response):
        return None
    if response.stream_cut_short:
        raise AssertionError(
            "The event stream was cut short before `done` (raise `max-stream-events` or "
            "`request-timeout` in schemathesis.toml, or keep generated runs smaller)."
        )
    check_stream(
        response.content.decode("utf-8"),
        header_trace=(response.headers.get("x-trace-id") or [None])[0],
        sent_trace=(case.headers or {}).get("x-trace-id"),
    )
    return True
