"""connexion's security callback for the spec's ApiKeyAuth scheme (keys themselves: ``skillrun.keys``)."""

from __future__ import annotations

from typing import Any

from .services import services_of

# The spec's ApiKeyAuth scheme (ASGI header names are lower-case bytes).
API_KEY_HEADER = b"x-api-key"


def apikey_info(apikey: str, required_scopes: Any = None, request: Any = None) -> dict[str, str] | None:
    """connexion's ``x-apikeyInfoFunc``: the key's identity as ``sub``, or None (401)."""
    identity = services_of(request.scope).keys.identify(apikey)
    return None if identity is None else {"sub": identity}
