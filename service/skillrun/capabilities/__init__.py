"""Capabilities: the built-ins (text, PII, utilities, ``http.request``, ``llm.chat``) and plugins.

- ``builtin_registry()``: the built-ins only (``human.input`` among them).
- ``default_registry()``: the built-ins plus every installed plugin
  (entry point group ``skillrun.capabilities``, see ``plugins``).
"""

from ..engine.capability import CapabilityRegistry
from . import http, human, llm, pii, text, util
from .http import HttpPolicy
from .llm import LlmConfig
from .plugins import load_plugins


def builtin_registry(http_policy: HttpPolicy | None = None, llm_config: LlmConfig | None = None) -> CapabilityRegistry:
    """A new registry holding every built-in capability.

    ``http_policy``: what ``http.request`` may reach besides public addresses
    (default: ``SKILLRUN_HTTP_ALLOW``); ``llm_config``: where ``llm.chat`` asks
    (default: ``SKILLRUN_LLM_BASE_URL``, ``SKILLRUN_LLM_API_KEY``).
    """
    return CapabilityRegistry(
        [
            *text.CAPABILITIES,
            *pii.CAPABILITIES,
            *util.CAPABILITIES,
            *human.CAPABILITIES,
            http.make_capability(http_policy),
            llm.make_capability(llm_config),
        ]
    )


def default_registry(http_policy: HttpPolicy | None = None, llm_config: LlmConfig | None = None) -> CapabilityRegistry:
    """The built-ins plus the capabilities of installed plugins (a broken plugin is logged)."""
    registry = builtin_registry(http_policy, llm_config)
    load_plugins(registry)
    return registry


__all__ = ["HttpPolicy", "LlmConfig", "builtin_registry", "default_registry", "load_plugins"]
