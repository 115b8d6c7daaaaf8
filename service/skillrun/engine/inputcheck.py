"""Checks a capability's rendered input against its input schema, at run time.

The loader checks what a skill file writes literally; an input built from
``${...}`` expressions is only known when the step runs (a ``url`` rendered from a
skill input, a ``timeout_ms`` read from an earlier step). Without this check such
input reached the capability unchecked, and each capability had to guard itself.

It is on every step's path, so it stays cheap: one ``jsonschema_rs`` validator per
capability, built on first use and kept; a yes/no check first (well under a
microsecond for a small input), the detailed error only when it says no.
Capability schemas are JSON Schema (``type`` may be a list, as the loader's literal
check also reads them: draft 2020-12).
"""

from __future__ import annotations

import logging
from typing import Any

import jsonschema_rs

from .capability import Capability

logger = logging.getLogger(__name__)

# Problem messages quote the failing value: a 500 KB string must not come back whole.
_MAX_MESSAGE = 200


def _trivial(schema: dict[str, Any]) -> bool:
    """``{"type": "object"}`` (the default) accepts every rendered input: nothing to check."""
    return set(schema) <= {"type", "description"} and schema.get("type", "object") == "object"


class InputCheck:
    """A validator per capability; ``problem(cap, args)`` says what is wrong, or None."""

    __slots__ = ("_validators",)

    def __init__(self) -> None:
        # name -> (the capability it was built for, its validator or None: nothing to check)
        self._validators: dict[str, tuple[Capability, Any]] = {}

    def _validator(self, cap: Capability) -> Any:
        entry = self._validators.get(cap.name)
        if entry is not None and entry[0] is cap:
            return entry[1]
        validator: Any = None
        if not _trivial(cap.input_schema):
            try:
                validator = jsonschema_rs.Draft202012Validator(cap.input_schema)
            except (ValueError, TypeError) as exc:  # a plugin's broken schema: its calls go unchecked
                logger.warning("capability %s: input schema not usable, inputs not checked: %s", cap.name, exc)
        self._validators[cap.name] = (cap, validator)
        return validator

    def problem(self, cap: Capability, args: dict[str, Any]) -> str | None:
        """``"input.<field>: <what is wrong>"`` when ``args`` breaks ``cap``'s input schema."""
        validator = self._validator(cap)
        if validator is None:
            return None
        try:
            if validator.is_valid(args):
                return None
            error = next(iter(validator.iter_errors(args)), None)
        except ValueError as exc:  # a value JSON has no type for (CEL bytes, timestamps), or nested too deep
            where = _not_json(args, "")
            if where is not None:
                return f"input{where[0]}: {where[1]} is not a JSON type"
            return f"input: {_short(str(exc))}"
        if error is None:
            return None
        return f"input{_field(error)}: {_short(error.message)}"


def _field(error: Any) -> str:
    """The failing field as ``.a.b[0]``; for a missing or unexpected key, that key."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return f"{path}.{kind.property}"
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties) and kind.unexpected:
        return f"{path}.{kind.unexpected[0]}"
    return path


_JSON_SCALARS = (str, int, float, bool, type(None))


def _not_json(value: Any, path: str) -> tuple[str, str] | None:
    """The path and type name of the first value that is not JSON (only on the error path)."""
    if isinstance(value, dict):
        for k, v in value.items():
            found = _not_json(v, f"{path}.{k}")
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _not_json(v, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return None if isinstance(value, _JSON_SCALARS) else (path, type(value).__name__)


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
