"""The one grammar for a time span, wherever one is written (skill files, settings).

A duration is a number of seconds (``3600``, ``2.5``) or a number with a unit:
``250ms``, ``90s``, ``15m``, ``12h``, ``7d``. Where a narrower set is allowed (a
skill file's ``timeout`` takes ``ms``, ``s`` and ``m``, see its schema), the schema
says so; what any accepted text means is decided here alone.
"""

from __future__ import annotations

import re
from typing import Any

UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)?")
EXAMPLES = "3600, 250ms, 90s, 15m, 12h or 7d"


def parse_duration(value: Any, name: str = "duration") -> float:
    """Seconds from a number of seconds or a string in the grammar above (any case,
    surrounding blanks ignored); ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.fullmatch(value.strip().lower()) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"{name}: {value!r} is not a duration like {EXAMPLES}")
    return float(m.group(1)) * UNIT_S[m.group(2) or "s"]
