"""The one hook a user adds to run schemathesis against Skillrun (issue 13): keep the
deliberately slow demo skills' generated runs short: ``demo.ticker``'s ``steps`` x
``delay_ms`` <= 4 s, and ``demo.approval``'s wait for a person (7 days by default) 20 ms.

Only in-range values are changed, so a case meant to be invalid stays invalid.
"""

import re
from typing import Any

import schemathesis

BUDGET_MS = 4000
WAIT = "20ms"
DURATION = re.compile(r"[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?")  # demo.approval's `timeout` pattern


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    inputs = case.body.get("inputs") if isinstance(case.body, dict) else None
    if "/demo.approval/" in case.operation.path and isinstance(inputs, dict):
        sent = inputs.get("timeout", WAIT)
        if isinstance(sent, str) and DURATION.fullmatch(sent):
            inputs["timeout"] = WAIT
        return case
    if "/demo.ticker/" not in case.operation.path or not isinstance(inputs, dict):
        return case
    steps, delay = inputs.get("steps", 3), inputs.get("delay_ms", 0)
    if _int(steps) and _int(delay) and 1 <= steps <= 10000 and 0 <= delay <= 60000 and steps * delay > BUDGET_MS:
        inputs["delay_ms"] = BUDGET_MS // steps
    return case


# Not ours to fix, but every user meets it: schemathesis 4.32 scans 2xx JSON bodies for
# same-origin links and calls ``urlsplit`` on any string starting with "http://"; a
# generated input echoed back whole (a run's ``inputs``, a summary of that text), e.g.
# "http://[", raises "Invalid IPv6 URL" and ends the whole run as an internal error.
# Such a string is no link: say so instead of crashing. (Guarded: a later schemathesis
# without this function is left alone.)
try:
    from schemathesis.engine import observations as _observations
except ImportError:  # pragma: no cover - another schemathesis
    _observations = None

if _observations is not None and hasattr(_observations, "_same_origin_path"):
    _scan = _observations._same_origin_path

    def _same_origin_path(value: str, origin: tuple[str, str]) -> str | None:
        try:
            return _scan(value, origin)
        except ValueError:
            return None

    _observations._same_origin_path = _same_origin_path
