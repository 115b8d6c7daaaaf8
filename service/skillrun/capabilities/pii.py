"""PII detection and redaction, and the ``pii`` safety gate.

Findings carry a kind and a count, never the matched text: an event that says an
address was found must not carry the address.

The patterns run on RE2, whose matching is linear in the text: with Python's engine
the e-mail pattern alone took 19.5 s on ``"a" * 100000`` (every start position ran
to the end of the text). RE2 has no look-behind, so the phone pattern captures the
character before a number (group 1) and puts it back.
"""

from __future__ import annotations

from typing import Any

import re2

from ..engine.capability import GateResult, cpu_capability

_PATTERNS: dict[str, Any] = {
    "email": re2.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "credit_card": re2.compile(r"\b(?:\d[ -]?){12,18}\d\b"),
    "phone": re2.compile(r"(^|[^\w+])(\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4})\b"),
}


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact_text(text: str, counts: dict[str, int]) -> str:
    for kind, pattern in _PATTERNS.items():
        def sub(m: Any, kind: str = kind) -> str:
            if kind == "credit_card" and not _luhn(m.group(0)):
                return str(m.group(0))
            counts[kind] = counts.get(kind, 0) + 1
            before = (m.group(1) or "") if kind == "phone" else ""
            return f"{before}[REDACTED:{kind}]"

        text = pattern.sub(sub, text)
    return text


def redact(value: Any, counts: dict[str, int]) -> Any:
    """``value`` with every string's PII replaced; ``counts`` gets each kind's count."""
    if isinstance(value, str):
        return redact_text(value, counts)
    if isinstance(value, dict):
        return {k: redact(v, counts) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, counts) for v in value]
    return value


def _findings(counts: dict[str, int]) -> list[dict[str, Any]]:
    return [{"kind": k, "count": n} for k, n in counts.items() if n]


def _detect(args: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    redact_text(args["text"], counts)
    return {"has_pii": bool(counts), "findings": _findings(counts)}


def _redact(args: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    return {"text": redact_text(args["text"], counts), "findings": _findings(counts)}


def _gate(output: dict[str, Any]) -> GateResult:
    counts: dict[str, int] = {}
    redacted = redact(output, counts)
    return GateResult(_findings(counts), redacted)


_IN = {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {"text": {"type": "string"}}}
_FINDINGS = {
    "type": "array",
    "description": "Each kind found and how often (never the matched text).",
    "items": {"type": "object", "properties": {"kind": {"type": "string"}, "count": {"type": "integer"}}},
}

CAPABILITIES = [
    cpu_capability(
        "pii.detect", _detect, "Find e-mail addresses, phone and card numbers.", _IN,
        {"type": "object", "additionalProperties": False,
         "properties": {"has_pii": {"type": "boolean"}, "findings": _FINDINGS}},
    ),
    cpu_capability(
        "pii.redact", _redact, "Replace e-mail addresses, phone and card numbers.", _IN,
        {"type": "object", "additionalProperties": False,
         "properties": {"text": {"type": "string"}, "findings": _FINDINGS}},
    ),
    cpu_capability("pii", _gate, "Gate: redact PII in a step's output (step_degraded).", gate=True),
]
