"""Rate limits per API key (per client address without one), through ``limits``.

The budget is shared by every rate-limited operation (so ``/execute`` and the
stream draw on the same one). Health probes and docs are not limited. Every
answer of a limited operation carries ``RateLimit-Limit``, ``RateLimit-Remaining``
and ``RateLimit-Reset``; a 429 adds ``Retry-After``.

Requests without a known key (none, or a wrong one) draw on their client
address's budget, so guessing keys is rate limited too; the security check
after this still answers them 401 until that budget is spent. That budget has
its own, lower limit (``SKILLRUN_RATE_LIMIT_ANONYMOUS``, never above the keys'
one): a key's limit can fit a client polling once a second while guessing
stays as slow as before.
"""

from __future__ import annotations

import math
import time
from typing import Any

import limits
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from ..errors import problem_response
from ..security import API_KEY_HEADER
from ..services import Services, add_response_headers, services_of
from .ratewindow import MovingWindow

EXEMPT_PREFIXES = ("/v1/health", "/v1/schemas", "/metrics")


ANONYMOUS = "addr:"  # the identity prefix of requests without a known key


def _per_second(item: limits.RateLimitItem) -> float:
    return item.amount / item.get_expiry()


class RateLimiter:
    def __init__(self, limit: str, storage_uri: str = "memory://", anonymous_limit: str | None = None) -> None:
        if not storage_uri.startswith("async+"):
            storage_uri = "async+" + storage_uri
        self.item = limits.parse(limit)
        anonymous = limits.parse(anonymous_limit) if anonymous_limit else self.item
        # Never more generous to a guesser than to a key holder.
        self.anonymous_item = anonymous if _per_second(anonymous) < _per_second(self.item) else self.item
        # limits' async Redis storage defaults to coredis; redis-py is the client this project ships.
        # wrap_exceptions: an unreachable storage raises limits' StorageError (answered 503).
        options: dict[str, Any] = {"wrap_exceptions": True}
        if storage_uri.startswith(("async+redis", "async+rediss")):
            options["implementation"] = "redispy"
        # In one process, our own window (ratewindow.py): limits' memory storage costs
        # O(limit) and a thread hop a hit. Shared storages (Redis) go through limits.
        self._local = MovingWindow() if storage_uri == "async+memory://" else None
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri, **options))

    async def _hit(self, item: limits.RateLimitItem, identity: str) -> tuple[bool, float, int]:
        """(allowed, the window's reset time, hits left)."""
        if self._local is not None:
            return self._local.hit(identity, item.amount, item.get_expiry())
        allowed = await self._limiter.hit(item, identity)
        stats = await self._limiter.get_window_stats(item, identity)
        return allowed, stats.reset_time, stats.remaining

    async def hit(self, identity: str) -> tuple[bool, dict[str, str]]:
        item = self.anonymous_item if identity.startswith(ANONYMOUS) else self.item
        allowed, reset_time, remaining = await self._hit(item, identity)
        reset = max(0, math.ceil(reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, reset))
        return allowed, headers


def _client_address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{ANONYMOUS}{client[0]}" if client else f"{ANONYMOUS}unknown"


def client_identity(scope: dict[str, Any], services: Services) -> str:
    """The known key's identity (the same one the security check gives), else the address."""
    for name, value in scope.get("headers", []):
        if name == API_KEY_HEADER:
            identity = services.keys.identify(value.decode("latin-1"))
            if identity is not None:
                return identity
            break
    return _client_address(scope)


class RateLimitMiddleware:
    """Sits before connexion's security check, so unauthenticated requests are limited too."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        services = services_of(scope)
        refusal = await draw(scope, services, client_identity(scope, services))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def draw(scope: Any, services: Services, identity: str) -> Any:
    """One hit on ``identity``'s budget: None when the request may go on (the
    ``RateLimit-*`` headers are then set for its answer), else the answer to send
    instead (429, or 503 while the shared counters are unreachable). The fast lane
    (``http/fastlane.py``) draws through this too: one hit per request, whichever path."""
    try:
        allowed, headers = await services.limiter.hit(identity)
    except StorageError:
        # The shared counters (Redis) are away: refuse for now rather than serve unlimited.
        return problem_response(503, "The rate-limit storage is unreachable; retry shortly.", headers={"Retry-After": "2"})
    if not allowed:
        services.observe.rate_limited()
        return problem_response(
            429, f"Rate limit of {headers['RateLimit-Limit']} requests exceeded; retry in "
            f"{headers['Retry-After']} s.", headers=headers
        )
    # The outermost middleware adds them to whatever answer goes out, problems included.
    add_response_headers(scope, headers)
    return None
