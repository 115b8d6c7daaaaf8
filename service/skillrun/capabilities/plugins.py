"""Capabilities from other packages, through the ``skillrun.capabilities`` entry point group.

A package registers capabilities in its ``pyproject.toml``::

    [project.entry-points."skillrun.capabilities"]
    mytools = "mytools.skillrun:CAPABILITIES"

The entry point may name a ``Capability``, an iterable of them, or a callable
returning either. A plugin that fails to import, or gives anything else, is logged
and skipped: one broken package must not take the server down. A capability whose
name is already registered is skipped too (built-ins win), and logged.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

from ..engine.capability import Capability, CapabilityRegistry

GROUP = "skillrun.capabilities"

log = logging.getLogger(__name__)


def _capabilities_of(obj: Any) -> list[Capability]:
    if callable(obj) and not isinstance(obj, Capability):
        obj = obj()
    if isinstance(obj, Capability):
        return [obj]
    caps = list(obj)
    bad = [c for c in caps if not isinstance(c, Capability)]
    if bad:
        raise TypeError(f"expected Capability objects, got {type(bad[0]).__name__}")
    return caps


def load_plugins(registry: CapabilityRegistry, group: str = GROUP) -> list[str]:
    """Register every plugin's capabilities; returns the names registered."""
    added: list[str] = []
    for ep in entry_points(group=group):
        try:
            caps = _capabilities_of(ep.load())
        except Exception:
            log.exception("capability plugin %r (%s) failed to load; skipped", ep.name, ep.value)
            continue
        for cap in caps:
            if cap.name in registry:
                log.error("capability plugin %r: %r is already registered; skipped", ep.name, cap.name)
                continue
            registry.register(cap)
            added.append(cap.name)
        log.info("capability plugin %r: %s", ep.name, ", ".join(c.name for c in caps) or "(none)")
    return added
