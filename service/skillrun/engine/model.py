"""The skill model: what a skill file becomes once loaded and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .expressions import Expression, Template
from .secret_inputs import has_secrets

SKILL_PREFIX = "skill:"

#: Error kinds a retry never repeats unless named in ``retry.on``: running the
#: same thing again gives the same answer (``http.request``: a refused address, a
#: redirect loop, a scheme or encoding it cannot speak).
DETERMINISTIC_KINDS = frozenset(
    {
        "expression_error",
        "gate_failed",
        "input_invalid",
        "internal",
        "http_refused",
        "http_too_many_redirects",
        "http_unsupported",
        "unconfigured",
        "upstream_status",
    }
)


#: Error kinds any step can fail with, whatever it calls (``retry.on`` may name them).
ENGINE_KINDS = frozenset(
    {"timeout", "capability_error", "expression_error", "gate_failed", "input_invalid", "internal"}
)


@dataclass(frozen=True, slots=True)
class Gate:
    """A safety check (a gate capability returning findings) before and/or after a step.

    ``stage``: ``pre`` checks the step's rendered input, ``post`` its output.
    ``policy`` on findings: ``degrade`` redacts and goes on (``step_degraded``),
    ``fail`` fails the step (kind ``gate_failed``), ``skip`` skips the step
    (``pre``: ``step_skipped``; ``post``: the output is dropped, ``step_degraded``),
    ``warn`` emits ``gate_warning`` and keeps the value as it is.
    """

    uses: str
    policy: str = "degrade"
    stage: str = "post"


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_ms: float = 100.0
    max_ms: float = 10_000.0
    multiplier: float = 2.0


@dataclass(frozen=True, slots=True)
class Retry:
    """Try a failing step again: ``max_attempts`` in all, waiting per ``backoff``."""

    max_attempts: int = 1
    backoff: Backoff = Backoff()
    jitter: float = 0.0  # the fraction of each delay that is random
    on: frozenset[str] | None = None  # None: every kind but DETERMINISTIC_KINDS

    def retries(self, kind: str) -> bool:
        if self.on is None:
            return kind not in DETERMINISTIC_KINDS
        return kind in self.on

    def describe(self) -> dict[str, Any]:
        """The spec's ``SkillStepRetry``."""
        b = self.backoff
        out: dict[str, Any] = {
            "max_attempts": self.max_attempts,
            "backoff": {"initial_ms": b.initial_ms, "max_ms": b.max_ms, "multiplier": b.multiplier},
            "jitter": self.jitter,
        }
        if self.on is not None:
            out["on"] = sorted(self.on)
        return out

    def delay_ms(self, attempt: int, rand: float) -> float:
        """The wait after failed attempt ``attempt`` (1-based); ``rand`` in [0, 1)."""
        b = self.backoff
        delay = min(b.max_ms, b.initial_ms * b.multiplier ** (attempt - 1))
        return round(delay * (1 - self.jitter * rand), 3)


NO_RETRY = Retry()


@dataclass(frozen=True, slots=True)
class Fallback:
    """What runs instead when a step's capability fails for good."""

    uses: str
    input: Template


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    uses: str
    input: Template
    description: str = ""
    when: Expression | None = None
    gates: tuple[Gate, ...] = ()
    foreach: Template | None = None
    max_parallel: int = 1  # foreach items at once
    needs: tuple[str, ...] = ()  # resolved: the steps this one waits for
    needs_written: bool = False  # `needs` was in the file (else: the step before)
    retry: Retry = NO_RETRY
    timeout_s: float | None = None  # per attempt
    on_error: str = "fail"  # fail | continue | fallback
    fallback: Fallback | None = None
    line: int = 0
    uses_line: int = 0
    raw_input: Any = field(default=None, compare=False)  # as written, to check nested inputs

    @property
    def skill_id(self) -> str | None:
        """The nested skill's id for ``uses: skill:<id>``, else None."""
        return self.uses[len(SKILL_PREFIX):] if self.uses.startswith(SKILL_PREFIX) else None

    @property
    def gate(self) -> Gate | None:
        return self.gates[0] if self.gates else None

    def describe(self) -> dict[str, Any]:
        """The spec's ``SkillStep``: everything a client needs to draw the step's node."""
        out: dict[str, Any] = {"id": self.id, "uses": self.uses, "after": list(self.needs)}
        if self.description:
            out["description"] = self.description
        if self.when is not None:
            out["when"] = self.when.source
        if self.gates:
            out["gate"] = self.gates[0].uses
            out["gates"] = [{"uses": g.uses, "policy": g.policy, "stage": g.stage} for g in self.gates]
        if self.needs_written:
            out["needs"] = list(self.needs)
        if self.foreach is not None:
            out["foreach"] = self.foreach.expressions[0].source
            out["max_parallel"] = self.max_parallel
        out.update(self._describe_failure())
        if self.skill_id is not None:
            out["skill"] = self.skill_id
        return out

    def _describe_failure(self) -> dict[str, Any]:
        """``retry``, ``timeout_s``, ``on_error`` and ``fallback``, where the file sets them."""
        out: dict[str, Any] = {"on_error": self.on_error}
        if self.retry.max_attempts > 1:
            out["retry"] = self.retry.describe()
        if self.timeout_s is not None:
            out["timeout_s"] = self.timeout_s
        if self.fallback is not None:
            out["fallback"] = {"uses": self.fallback.uses}
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
    max_parallel: int = 8  # steps of one run at once
    timeout_s: float | None = None
    # The definition's content hash: a run resumes only with the definition it started with.
    digest: str = ""
    # After a restart: ``resume`` the run from its log, or ``interrupt`` it (close it).
    on_restart: str = "resume"
    # Its inputs schema marks some input secret (``secret_inputs``): asked at every run's
    # start, answered once (a walk of the schema: ~20 us a run).
    secret_inputs: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret_inputs", has_secrets(self.inputs_schema))

    @property
    def outputs_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {o.name: o.schema for o in self.outputs},
        }

    @property
    def nested_skills(self) -> list[tuple[Step, str]]:
        return [(s, s.skill_id) for s in self.steps if s.skill_id is not None]

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
