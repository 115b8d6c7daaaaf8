"""The objects one app instance shares across requests, reachable from any request.

They live on the app instance (``ServicesMiddleware`` puts them in the ASGI scope),
never in module globals, so two apps in one process never share state.

Pass-through: a middleware that only hands most requests on (the console, the docs
guard, the served spec, the fast lane) does so from a plain ``__call__`` that
returns the inner app's awaitable, not from a coroutine of its own: an open stream
holds every frame of the chain it came through for its whole life (~0.5 KB each;
10,000 idle streams in bench/stream.py (d)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, MutableMapping, Protocol

if TYPE_CHECKING:
    from ..engine import CapabilityRegistry, Engine, SkillCatalog
    from ..observe.hub import Observability
    from ..runs import RunManager, RunStore
    from ..runs.nodes import NodeCoordinator
    from ..settings import Settings
    from .loadreport import LoadReport

class Keys(Protocol):
    """The API keys this app knows (``auth.KeyRing``): the middleware depend on this,
    not on ``auth``, so the edge modules import one another one way only."""

    def __len__(self) -> int: ...

    def identify(self, key: str) -> str | None: ...


class Limiter(Protocol):
    """The rate limiter (``ratelimit.RateLimiter``)."""

    async def hit(self, identity: str) -> tuple[bool, dict[str, str]]: ...


_SCOPE_KEY = "skillrun.services"
_HEADERS_KEY = "skillrun.response_headers"


@dataclass
class Services:
    settings: "Settings"
    catalog: "SkillCatalog"
    engine: "Engine"
    store: "RunStore"
    runs: "RunManager"
    keys: Keys
    limiter: Limiter
    observe: "Observability"
    # What GET /v1/capabilities lists and /v1/health/ready counts (None: not reported).
    capabilities: "CapabilityRegistry | None" = None
    load_report: "LoadReport | None" = None
    # Leases, takeover and cross-node cancels, with a store shared by several nodes.
    nodes: "NodeCoordinator | None" = None


def services_of(scope: MutableMapping[str, Any]) -> Services:
    services: Services = scope["state"][_SCOPE_KEY]
    return services


def add_response_headers(scope: MutableMapping[str, Any], headers: dict[str, str]) -> None:
    """Headers for the answer to this request, whichever layer ends up sending it."""
    scope["state"].setdefault(_HEADERS_KEY, {}).update(headers)


class ServicesMiddleware:
    """Outermost: puts the services in the scope and adds ``add_response_headers``'s."""

    def __init__(self, app: Any, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[_SCOPE_KEY] = self.services

        async def send_with_headers(message: dict[str, Any]) -> None:
            extra = state.get(_HEADERS_KEY)
            if extra and message["type"] == "http.response.start":
                headers = message.get("headers", [])
                have = {name.lower() for name, _ in headers}
                added = [(name, v.encode()) for k, v in extra.items() if (name := k.lower().encode()) not in have]
                message = {**message, "headers": [*headers, *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
