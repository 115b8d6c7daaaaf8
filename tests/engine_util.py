"""Helpers for engine tests: a recording emitter that builds real envelopes, skills from text."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import datetime, timezone
from typing import Any

from skillrun.capabilities import builtin_registry
from skillrun.engine import Capability, CapabilityRegistry, Engine, RunOutcome, Skill, SkillCatalog
from skillrun.engine.loader import link, parse_skill

from sse_util import check_order
from spec_tools import event_validator

_check_event = event_validator()


class Recorder:
    """The engine's ``Emitter``: records events with the envelope ``RunWriter`` writes."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.times: list[float] = []

    def emit(self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None) -> None:
        event = {
            "type": type,
            "message": message,
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "step_id": step_id,
            "trace_id": "trace",
            "run_id": "run_test",
            "data": data,
        }
        _check_event(event)  # every event the engine emits matches the contract
        self.events.append(event)
        self.times.append(asyncio.get_running_loop().time())

    def finish(self, skill_id: str, outcome: RunOutcome) -> list[dict[str, Any]]:
        """The events plus the ``done`` the run manager appends; checked for order."""
        done: dict[str, Any] = {
            "type": "done",
            "message": f"Skill '{skill_id}' {outcome.status}.",
            "skill_id": skill_id,
            "status": outcome.status,
            "outputs": outcome.outputs,
            "trace_id": "trace",
            "run_id": "run_test",
            "duration_ms": outcome.duration_ms,
            "steps": outcome.steps,
        }
        if outcome.error is not None:
            done["error"] = outcome.error
        _check_event(done)
        events = [*self.events, done]
        check_order(events)
        return events

    def of(self, type: str, step_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type and (step_id is None or e["step_id"] == step_id)]

    def types(self, step_id: str | None = None) -> list[str]:
        return [e["type"] for e in self.events if step_id is None or e["step_id"] == step_id]


def skill(text: str, registry: CapabilityRegistry | None = None, path: str = "test.yaml") -> Skill:
    return parse_skill(textwrap.dedent(text), path, registry or builtin_registry())


def engine_for(*skills: Skill, registry: CapabilityRegistry | None = None, **kwargs: Any) -> Engine:
    problems = link(skills)
    assert not problems, problems
    return Engine(registry or builtin_registry(), skills=SkillCatalog(skills), **kwargs)


async def run(engine: Engine, s: Skill, inputs: dict[str, Any] | None = None, **kwargs: Any) -> tuple[RunOutcome, Recorder, list[dict[str, Any]]]:
    rec = Recorder()
    outcome = await engine.run(s, inputs or {}, rec, channel="http", **kwargs)
    return outcome, rec, rec.finish(s.id, outcome)


class Probe:
    """A capability that sleeps, records starts, ends and cancellations, and tracks concurrency."""

    def __init__(self, name: str = "probe") -> None:
        self.name = name
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.running = 0
        self.peak = 0

    async def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        tag = str(args.get("tag", ""))
        self.started.append(tag)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(args.get("ms", 0) / 1000)
        except asyncio.CancelledError:
            self.cancelled.append(tag)
            raise
        finally:
            self.running -= 1
        self.finished.append(tag)
        if args.get("fail"):
            from skillrun.engine import CapabilityError

            raise CapabilityError(f"{tag} failed on purpose", kind=args.get("kind", "capability_error"))
        return {"tag": tag}

    def capability(self) -> Capability:
        return Capability(self.name, self)


def registry_with(*caps: Capability) -> CapabilityRegistry:
    reg = builtin_registry()
    for c in caps:
        reg.register(c)
    return reg

