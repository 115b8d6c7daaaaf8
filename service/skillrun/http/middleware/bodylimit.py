"""What an operation with a body checks before validation: size, read time, media type.

Only operations that take a body (the spec's ``requestBody``) read one, so only
they answer 413 or 408 (and document them); any other operation ignores a body
(the connection's own read deadline in ``edge.py`` still bounds it).

- 413: a Content-Length over the limit at once, a chunked body as it arrives.
- 408: the whole body must arrive within ``body_timeout_s`` of the request's
  headers; a client trickling a byte a second holds nothing for longer. The
  answer closes the connection (the rest of the body is never read).
- Media types are case-insensitive (RFC 9110, section 8.3.1), but connexion picks
  the body's schema and validator by a case-sensitive match: ``APPLICATION/JSON``
  found no schema (500) and skipped validation. The media type is lower-cased
  here, its parameters kept, so every spelling validates like ``application/json``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from connexion.exceptions import ProblemException
from connexion.middleware.abstract import ROUTING_CONTEXT

from ..edge import HEAD_DONE_AT
from ..errors import TITLES, problem_response
from ..services import services_of


def normalize_content_type(value: bytes) -> bytes:
    """``APPLICATION/JSON ; Charset=UTF-8`` -> ``application/json; Charset=UTF-8``."""
    media_type, sep, parameters = value.partition(b";")
    media_type = media_type.strip().lower()
    return media_type + b"; " + parameters.strip() if sep else media_type


def _normalized_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(n, normalize_content_type(v) if n == b"content-type" else v) for n, v in headers]


class BodyLimitMiddleware:
    def __init__(self, app: Any, body_operations: frozenset[str]) -> None:
        self.app = app
        self.body_operations = body_operations

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        routing = scope.get("extensions", {}).get(ROUTING_CONTEXT, {})
        if scope["type"] != "http" or routing.get("operation_id") not in self.body_operations:
            await self.app(scope, receive, send)
            return
        settings = services_of(scope).settings
        limit = settings.max_body_bytes
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
        scope = {**scope, "headers": _normalized_headers(scope.get("headers", []))}
        # From the end of the head when the edge protocol runs (skillrun serve), else from now.
        start = scope.get("state", {}).get(HEAD_DONE_AT) or asyncio.get_running_loop().time()
        await self.app(scope, _BoundedReceive(receive, limit, settings.body_timeout_s, start), send)


class _BoundedReceive:
    """``receive`` that stops a body over the size limit (413) or past its deadline (408)."""

    def __init__(self, receive: Any, limit: int, timeout_s: float, start: float) -> None:
        self._receive = receive
        self._limit = limit
        self._timeout_s = timeout_s
        self._deadline = start + timeout_s
        self._seen = 0
        self._complete = False

    async def __call__(self) -> dict[str, Any]:
        if self._complete:
            # After the body: the app waits for a disconnect (streams do); no deadline.
            return dict(await self._receive())
        try:
            async with asyncio.timeout_at(self._deadline):
                message: dict[str, Any] = await self._receive()
        except TimeoutError:
            raise ProblemException(
                status=408,
                title=TITLES[408],
                detail=f"The body did not arrive within {self._timeout_s:g} s.",
                headers={"Connection": "close"},
            ) from None
        if message["type"] == "http.request":
            # A chunked body has no Content-Length: count as it arrives.
            self._seen += len(message.get("body", b""))
            if self._seen > self._limit:
                raise ProblemException(
                    status=413, title=TITLES[413], detail=f"The body is larger than the limit of {self._limit} bytes."
                )
            self._complete = not message.get("more_body", False)
        else:
            self._complete = True
        return message
