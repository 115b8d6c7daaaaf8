"""Which inputs of a skill are secret: what its inputs schema marks ``writeOnly: true``
(OpenAPI 3.0: sent in requests, never returned) or ``format: password``.

A mark covers the whole value below it, at any depth of ``properties``, ``items``
and ``additionalProperties``; ``allOf`` / ``anyOf`` / ``oneOf`` branches count
together (a value any branch marks is secret). The run layer keeps secret values
out of the store (``runs.redaction``); the HTTP layer keeps them out of 422s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

PLACEHOLDER = "[REDACTED]"

Leaf = str | int | float  # what a secret value is searched for by (booleans cannot be)

_BRANCHES = ("allOf", "anyOf", "oneOf")


def is_marked(schema: Any) -> bool:
    """The schema itself marks its value secret."""
    return isinstance(schema, dict) and (schema.get("writeOnly") is True or schema.get("format") == "password")


@dataclass(slots=True)
class _View:
    """A schema with its branches merged: what matters for finding secrets."""

    secret: bool = False
    properties: dict[str, Any] = field(default_factory=dict)
    items: Any = None
    extra: Any = None  # additionalProperties


def _parts(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield schema
    for key in _BRANCHES:
        for branch in schema.get(key) or ():
            if isinstance(branch, dict):
                yield from _parts(branch)


def _both(a: Any, b: Any) -> Any:
    return b if a is None else {"allOf": [a, b]}


def _view(schema: Any) -> _View:
    view = _View()
    if not isinstance(schema, dict):
        return view
    for part in _parts(schema):
        view.secret = view.secret or is_marked(part)
        props = part.get("properties")
        if isinstance(props, dict):
            for name, sub in props.items():
                view.properties[name] = _both(view.properties.get(name), sub)
        if isinstance(part.get("items"), dict):
            view.items = _both(view.items, part["items"])
        if isinstance(part.get("additionalProperties"), dict):
            view.extra = _both(view.extra, part["additionalProperties"])
    return view


def has_secrets(schema: Any) -> bool:
    """True when ``schema`` marks any value secret."""
    view = _view(schema)
    if view.secret:
        return True
    subs = [*view.properties.values(), view.items, view.extra]
    return any(has_secrets(s) for s in subs if s is not None)


def secret_at(schema: Any, path: list[Any]) -> bool:
    """True when the value at ``path`` in a document of ``schema`` is (inside) a secret."""
    for part in path:
        view = _view(schema)
        if view.secret:
            return True
        if isinstance(part, int):
            schema = view.items
        else:
            schema = view.properties.get(part, view.extra)
        if schema is None:
            return False
    return _view(schema).secret


def redact(schema: Any, value: Any, found: list[Leaf]) -> Any:
    """``value`` with its secret parts replaced by ``PLACEHOLDER`` (a copy where
    anything changed); the secret strings and numbers are added to ``found``."""
    view = _view(schema)
    if view.secret:
        _leaves(value, found)
        return PLACEHOLDER
    if isinstance(value, dict) and (view.properties or view.extra is not None):
        return {k: redact(view.properties.get(k, view.extra), v, found) for k, v in value.items()}
    if isinstance(value, list) and view.items is not None:
        return [redact(view.items, v, found) for v in value]
    return value


def _leaves(value: Any, out: list[Leaf]) -> None:
    # Iterative: a secret object may nest as deep as the body parser allowed.
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            out.append(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def marked_defaults(schema: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of the ``default`` of every marked schema: a secret's default would be
    served with the skill's schema (and is no secret)."""
    if isinstance(schema, dict):
        if is_marked(schema) and "default" in schema:
            yield (*path, "default")
        for key, sub in schema.items():
            if key not in ("default", "example", "enum"):
                yield from marked_defaults(sub, (*path, key))
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            yield from marked_defaults(sub, (*path, i))
