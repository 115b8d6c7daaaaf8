"""Capabilities: the built-ins (text, PII, utilities, ``http.request``) and plugins.

- ``builtin_registry()``: the built-ins only (``human.input`` among them).
- ``default_registry()``: the built-ins plus every installed plugin
  (entry point group ``skillrun.capabilities``, see ``plugins``).
"""

from ..engine.capability import CapabilityRegistry
from . import http, human, pii, text, util
from .http import HttpPolicy
from .plugins import load_plugins


def builtin_registry(http_policy: HttpPolicy | None = None) -> CapabilityRegistry:
    """A new registry holding every built-in capability.

    ``http_policy``: what ``http.request`` may reach besides public addresses
    (default: ``SKILLRUN_HTTP_ALLOW``).
    """
    return CapabilityRegistry(
        [
            *text.CAPABILITIES,
            *pii.CAPABILITIES,
            *util.CAPABILITIES,
            *human.CAPABILITIES,
            http.make_capability(http_policy),
        ]
    )


def default_registry(http_policy: HttpPolicy | None = None) -> CapabilityRegistry:
    """The built-ins plus the capabilities of installed plugins (a broken plugin is logged)."""
    registry = builtin_registry(http_policy)
    load_plugins(registry)
    return registry


__all__ = ["HttpPolicy", "builtin_registry", "default_registry", "load_plugins"]
