"""Refuse bodies over the limit (413) before reading them whole."""

from __future__ import annotations

from typing import Any

from connexion.exceptions import ProblemException

from .errors import TITLES, problem_response
from .services import services_of


class BodyLimitMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
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
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ProblemException(status=413, title=TITLES[413], detail=detail)
            return message

        await self.app(scope, counted_receive, send)
