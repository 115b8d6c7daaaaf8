"""The engine: pure asyncio, no HTTP. Skills in, events out.

- ``model``: the skill and step model (what a YAML file becomes).
- ``expressions``: CEL conditions and ``${...}`` templates.
- ``yaml_lines``, ``parsing``, ``catalog`` (``loader`` re-exports them): YAML files
  -> ``Skill`` with problems named by file and line -> the one catalog.
- ``capability``: the capability registry steps call into; ``workers``: where
  CPU-bound capabilities run.
- ``runner``: runs a skill (scheduling), emitting every step's fate into an
  ``Emitter``; ``step``: one step's life; ``pool``: the bounded pool;
  ``stopping``: cancellation with reasons; ``forward``: nested skills' events;
  ``deltas``: a step's partial output (``emit_delta``) as ``step_delta`` events.
"""

from .capability import Capability, CapabilityError, CapabilityRegistry, GateResult, emit_delta, run_state
from .loader import SkillCatalog, SkillLoadError, load_skill_file, load_skills
from .model import Skill, Step
from .runner import Emitter, Engine, RunOutcome

__all__ = [
    "Capability",
    "CapabilityError",
    "CapabilityRegistry",
    "Emitter",
    "Engine",
    "GateResult",
    "RunOutcome",
    "Skill",
    "SkillCatalog",
    "SkillLoadError",
    "Step",
    "emit_delta",
    "load_skill_file",
    "load_skills",
    "run_state",
]
