"""CORS (Fetch standard, "CORS protocol"), so a web page on another origin can call the API.

Starlette's ``CORSMiddleware`` does the protocol; this module only fixes what we
allow and expose, and answers a refused preflight the way the Fetch standard
allows (section 3.2.3, "CORS-preflight fetch"): a 200 without any
``Access-Control-Allow-*`` header, so the browser's CORS check fails and it
never sends the request. Starlette's 400 would make a preflight's outcome a
client error, although nothing in the request is malformed: the origin, method
or header asked for is simply not allowed here. The body names what was refused,
for whoever debugs it with curl. It must sit outside connexion's security check (a preflight carries
no ``x-api-key``: browsers never send credentials-like headers on it) and outside
the exception handling (so 401/422/429 problems carry the CORS headers and a page
can read them): ``MiddlewarePosition.BEFORE_EXCEPTION``.

No origin is allowed unless configured (``SKILLRUN_CORS_ORIGINS``); ``*`` allows
any. Credentials (cookies) are never allowed: the key travels in a header.

A request without an ``Origin`` (a server's, a script's: most of them) gets only what
Starlette adds to such an answer, ``Vary: Origin``, from a lean ``send`` of this
module's (``_vary_origin``): Starlette's wraps the request's and the answer's headers
in its header classes for it (~2% of a stream start's instructions, bench/instructions.py --start).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response

ALLOW_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
ALLOW_HEADERS = (
    "x-api-key", "x-trace-id", "traceparent", "tracestate", "Last-Event-ID", "Idempotency-Key", "Content-Type",
)
EXPOSE_HEADERS = (
    "X-Run-Id",
    "x-trace-id",
    "Location",
    "Idempotent-Replayed",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
)
MAX_AGE_S = 600


_ORIGIN = b"origin"
_VARY = b"vary"


def _vary_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Vary: Origin`` as Starlette's ``CORSMiddleware`` sets it on an
    answer to a request without an ``Origin``: any ``Vary`` values joined with ``Origin``
    in the first ``Vary``'s place (the others dropped), else appended."""
    values = [value.decode("latin-1") for name, value in headers if name == _VARY]
    if not values:
        return [*headers, (_VARY, b"Origin")]
    joined: tuple[bytes, bytes] | None = (_VARY, ", ".join([*values, "Origin"]).encode("latin-1"))
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name != _VARY:
            out.append((name, value))
        elif joined is not None:
            out.append(joined)
            joined = None
    return out


class CorsMiddleware(CORSMiddleware):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or any(name == _ORIGIN for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return
        # No Origin: no CORS protocol, only ``Vary: Origin`` on the answer (module docstring).
        await self.app(scope, receive, _VaryOrigin(send))

    def __init__(self, app: Any, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=list(origins),
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            expose_headers=EXPOSE_HEADERS,
            allow_credentials=False,
            max_age=MAX_AGE_S,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        detail = "CORS preflight refused: " + "; ".join(self._refusals(request_headers))
        # Only what says nothing about permission survives (Vary keeps caches honest).
        headers = {k: v for k, v in response.headers.items() if k.lower() == "vary"}
        return PlainTextResponse(detail, 200, headers=headers)

    def _refusals(self, request_headers: Headers) -> list[str]:
        """The same checks Starlette made, spelled out with the offending values."""
        out = []
        origin = request_headers["origin"]
        if not self.is_allowed_origin(origin=origin):
            out.append(f"Origin '{origin}' is not allowed (SKILLRUN_CORS_ORIGINS)")
        method = request_headers["access-control-request-method"]
        if method not in self.allow_methods:
            out.append(f"Access-Control-Request-Method '{method}' is not one of {', '.join(ALLOW_METHODS)}")
        requested = request_headers.get("access-control-request-headers")
        if requested is not None and not self.allow_all_headers:
            bad = [h.strip() for h in requested.split(",") if h.strip().lower() not in self.allow_headers]
            if bad:
                out.append(f"Access-Control-Request-Headers {', '.join(bad)} not allowed")
        if request_headers.get("access-control-request-private-network") is not None:
            out.append("Access-Control-Request-Private-Network is not allowed")
        return out or ["not allowed"]


class _VaryOrigin:
    """``send`` that puts ``Vary: Origin`` in the answer's head (``_vary_origin``)."""

    __slots__ = ("send",)

    def __init__(self, send: Callable[[Any], Awaitable[None]]) -> None:
        self.send = send

    def __call__(self, message: Any) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            message = {**message, "headers": _vary_origin(list(message.get("headers", ())))}
        return self.send(message)
