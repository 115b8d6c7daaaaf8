"""The one hook a user adds to run schemathesis against Skillrun (issue 13): keep the
deliberately slow ``demo.ticker``'s generated runs short, ``steps`` x ``delay_ms`` <= 4 s.

Only in-range values are changed, so a case meant to be invalid stays invalid.
"""

from typing import Any

import schemathesis

BUDGET_MS = 4000


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    inputs = case.body.get("inputs") if isinstance(case.body, dict) else None
    if "/demo.ticker/" not in case.operation.path or not isinstance(inputs, dict):
        return case
    steps, delay = inputs.get("steps", 3), inputs.get("delay_ms", 0)
    if _int(steps) and _int(delay) and 1 <= steps <= 10000 and 0 <= delay <= 60000 and steps * delay > BUDGET_MS:
        inputs["delay_ms"] = BUDGET_MS // steps
    return case
