"""Issue 17, "Writing a skill": there was no way to learn what capabilities exist and
what they take. `docs/SKILLS.md` now holds a capability reference generated from the
registry by `scripts/capability_reference.py`; these tests keep it current."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType
from typing import Any

from conftest import ROOT
from skillrun.capabilities import builtin_registry
from skillrun.engine.capability import Capability, CapabilityRegistry

SCRIPT = ROOT / "scripts" / "capability_reference.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capability_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_capability_reference_is_current() -> None:
    """What the generator writes from today's registry is exactly what docs/SKILLS.md holds
    (else: run `python scripts/capability_reference.py`)."""
    script = _script()
    doc = (ROOT / "docs" / "SKILLS.md").read_text(encoding="utf-8")
    assert script.update(doc, builtin_registry()) == doc, "stale: run python scripts/capability_reference.py"


def test_check_mode_exits_0_when_current() -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_reference_has_a_section_for_every_built_in_capability() -> None:
    doc = (ROOT / "docs" / "SKILLS.md").read_text(encoding="utf-8")
    for capability in builtin_registry().all():
        assert f"### `{capability.name}`" in doc, capability.name


def test_a_new_capability_makes_the_reference_stale_and_shows_its_fields() -> None:
    """The check can fail: a capability added to the registry changes the reference, with
    its description, its required input field and its output field."""
    script = _script()

    async def fn(args: dict[str, Any]) -> dict[str, Any]:
        return {}

    registry = CapabilityRegistry([
        *builtin_registry().all(),
        Capability("acme.count", fn, "Count things.",
                   {"type": "object", "required": ["things"], "properties": {"things": {"type": "array"}}},
                   {"type": "object", "properties": {"count": {"type": "integer", "minimum": 0}}}),
    ])  # fmt: skip
    doc = (ROOT / "docs" / "SKILLS.md").read_text(encoding="utf-8")
    fresh = script.update(doc, registry)
    assert fresh != doc
    section = fresh.split("### `acme.count`", 1)[1].split("### ", 1)[0]
    assert "Count things." in section
    assert "| `things` | array | yes |" in section and "| `count` | integer |  | >= 0 |" in section
