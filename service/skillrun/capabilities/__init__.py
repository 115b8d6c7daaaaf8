"""Built-in capabilities (offline): text, PII, and utilities for demos and tests."""

from ..engine.capability import CapabilityRegistry
from . import pii, text, util


def builtin_registry() -> CapabilityRegistry:
    """A new registry holding every built-in capability."""
    return CapabilityRegistry([*text.CAPABILITIES, *pii.CAPABILITIES, *util.CAPABILITIES])


__all__ = ["builtin_registry"]
