"""Validators built from the OpenAPI contract, for any test that checks events or bodies.

OpenAPI 3.0.3 schemas are a dialect of JSON Schema: ``nullable``, boolean
``exclusiveMinimum``/``exclusiveMaximum``, ``discriminator``, ``example`` and the
``x-contentMediaType``/``x-contentSchema`` pair the contract uses because connexion
rejects the real keywords. :func:`to_json_schema` turns a 3.0 schema into plain
JSON Schema (draft 2020-12) and :func:`schema_validator` compiles one component with
``jsonschema_rs`` (fast enough to check every event of every test: ~µs per event).

    from skillrun.conformance.schemas import event_validator
    check = event_validator()            # from openapi/skillrun.yaml
    check = event_validator(served_spec)  # from GET /openapi.json
    check(event)                         # AssertionError naming every violation
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Callable, Mapping

import jsonschema_rs

from ..http.spec import load_base_spec

EVENT_UNION = "SkillEvent"
_VENDOR_RENAMES = {"x-contentMediaType": "contentMediaType", "x-contentSchema": "contentSchema"}
# OAS-only keywords without a JSON Schema meaning; dropped so they cannot be misread.
_OAS_ONLY = ("nullable", "discriminator", "xml", "externalDocs", "example")


def rename_content_keywords(node: Any) -> Any:
    """Rename ``x-contentMediaType``/``x-contentSchema`` to the real keywords, in place."""
    if isinstance(node, dict):
        for old, new in _VENDOR_RENAMES.items():
            if old in node:
                node[new] = node.pop(old)
        for value in node.values():
            rename_content_keywords(value)
    elif isinstance(node, list):
        for item in node:
            rename_content_keywords(item)
    return node


def to_json_schema(schema: Any) -> Any:
    """A copy of an OAS 3.0 schema object as JSON Schema 2020-12 (refs left as they are)."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: to_json_schema(value) for key, value in schema.items() if key not in _OAS_ONLY}
    rename_content_keywords(out)
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        # OAS 3.0 (draft 4): a boolean flag on the bound; 2020-12: the bound itself.
        if out.get(exclusive) is True and bound in out:
            out[exclusive] = out.pop(bound)
        elif out.get(exclusive) is False:
            del out[exclusive]
    if schema.get("nullable") is True:
        # OAS 3.0.3: "a true value adds null to the allowed types".
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def _root(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    # The converted components travel with the root, so "#/components/schemas/X" resolves.
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{name}",
        "components": {"schemas": to_json_schema(copy.deepcopy(spec["components"]["schemas"]))},
    }


class SchemaValidator:
    """One compiled component schema; calling it asserts, ``errors()`` lists."""

    def __init__(self, spec: Mapping[str, Any], name: str) -> None:
        self.name = name
        self.schema = _root(spec, name)
        self._validator = jsonschema_rs.Draft202012Validator(self.schema, validate_formats=True)

    def is_valid(self, instance: Any) -> bool:
        return bool(self._validator.is_valid(instance))

    def errors(self, instance: Any) -> list[str]:
        return [f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message}"
                for e in self._validator.iter_errors(instance)]

    def __call__(self, instance: Any) -> None:
        if self._validator.is_valid(instance):
            return
        problems = "\n  ".join(self.errors(instance))
        raise AssertionError(f"not a valid {self.name}:\n  {problems}\n{json.dumps(instance)[:2000]}")


def schema_validator(spec: Mapping[str, Any] | None, name: str) -> SchemaValidator:
    """A validator for ``components/schemas/<name>`` of ``spec`` (default: the YAML file)."""
    if spec is None:
        return _file_validator(name)
    return SchemaValidator(spec, name)


@functools.lru_cache(maxsize=None)
def _file_validator(name: str) -> SchemaValidator:
    return SchemaValidator(load_base_spec(), name)


def event_validator(spec: Mapping[str, Any] | None = None) -> Callable[[Any], None]:
    """Asserts that one event (a parsed ``data:`` payload) is a valid ``SkillEvent``.

    Checks the discriminator as well: the ``oneOf`` member named by the event's
    ``type`` in the discriminator mapping must be the one that matches.
    """
    spec = spec if spec is not None else load_base_spec()
    union = schema_validator(spec, EVENT_UNION)
    union_schema = spec["components"]["schemas"][EVENT_UNION]
    mapping = (union_schema.get("discriminator") or {}).get("mapping") or {}
    members = {kind: schema_validator(spec, ref.rsplit("/", 1)[-1]) for kind, ref in mapping.items()}

    def check(event: Any) -> None:
        kind = event.get("type") if isinstance(event, dict) else None
        if mapping:
            # The member first: its errors name the field, the union's only say "oneOf".
            assert kind in members, f"event type {kind!r} is not in the discriminator mapping"
            members[kind](event)
        union(event)

    return check
