"""With ``SKILLRUN_PUBLIC_DOCS=0``, the served spec and Swagger UI need a key (see README)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from ..errors import problem_response
from ..services import services_of
from .ratelimit import client_identity


class DocsGuardMiddleware:
    """With ``SKILLRUN_PUBLIC_DOCS=0``: the served spec and Swagger UI need a key.

    They list every loaded skill and its inputs. Without a valid key the answer
    is 401, drawn from the client address's budget like any other failed key
    (so the docs are no free place to guess keys).
    """

    PATHS = ("/openapi.json", "/openapi.yaml", "/docs")

    def __init__(self, app: Any, public: bool) -> None:
        self.app: Callable[[Any, Any, Any], Awaitable[None]] = app
        self.public = public

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        if self.public or scope["type"] != "http" or not scope["path"].startswith(self.PATHS):
            return self.app(scope, receive, send)  # no frame of its own (services.py, "Pass-through")
        return self._guard(scope, receive, send)

    async def _guard(self, scope: Any, receive: Any, send: Any) -> None:
        services = services_of(scope)
        identity = client_identity(scope, services)
        if not identity.startswith("addr:"):
            await self.app(scope, receive, send)
            return
        allowed, headers = await services.limiter.hit(identity)
        if allowed:
            response = problem_response(401, "The spec and docs need a valid x-api-key here.", headers=headers)
        else:
            response = problem_response(
                429, f"Rate limit of {headers['RateLimit-Limit']} requests exceeded; retry in "
                f"{headers['Retry-After']} s.", headers=headers
            )
        await response(scope, receive, send)
