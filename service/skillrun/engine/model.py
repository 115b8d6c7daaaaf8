"""The skill model: what a skill file becomes once loaded and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .expressions import Expression, Template


@dataclass(frozen=True, slots=True)
class Gate:
    """A safety check on a step's output. ``degrade``: redact and go on."""

    uses: str
    policy: str = "degrade"


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    uses: str
    input: Template
    description: str = ""
    when: Expression | None = None
    gate: Gate | None = None
    foreach: Template | None = None
    line: int = 0

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "uses": self.uses}
        if self.description:
            out["description"] = self.description
        if self.when is not None:
            out["when"] = self.when.source
        if self.gate is not None:
            out["gate"] = self.gate.uses
        return out


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    value: Template
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Skill:
    id: str
    version: str
    description: str
    inputs_schema: dict[str, Any]
    outputs: tuple[Output, ...]
    steps: tuple[Step, ...]
    source: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {o.name: o.schema for o in self.outputs},
        }

    def with_defaults(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs with the schema's top-level defaults filled in."""
        if not self.defaults:
            return inputs
        return {**self.defaults, **inputs}

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "description": self.description}

    def describe(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "inputs": self.inputs_schema,
            "outputs": self.outputs_schema,
            "steps": [s.describe() for s in self.steps],
        }
