"""Refuse bodies over the limit (413) before reading them whole.

Only operations that take a body (the spec's ``requestBody``) read one, so only
they answer 413 (and document it); any other operation ignores a body.
"""

from __future__ import annotations

from typing import Any

from connexion.exceptions import ProblemException
from connexion.middleware.abstract import ROUTING_CONTEXT

from .errors import TITLES, problem_response
from .services import services_of


class BodyLimitMiddleware:
    def __init__(self, app: Any, body_operations: frozenset[str]) -> None:
        self.app = app
        self.body_operations = body_operations

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        routing = scope.get("extensions", {}).get(ROUTING_CONTEXT, {})
        if scope["type"] != "http" or routing.get("operation_id") not in self.body_operations:
            await self.app(scope, receive, send)
            return
        limit = services_of(scope).settings.max_body_bytes
        detail = f"The body is larger than the limit of {limit} bytes."
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await problem_response(413, detail)(scope, receive, send)
                    return
        seen = 0

        async def counted_receive() -> dict[str, Any]:
            # A chunked body has no Content-Length: count as it arrives.
            nonlocal seen
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ProblemException(status=413, title=TITLES[413], detail=detail)
            return message

        await self.app(scope, counted_receive, send)
