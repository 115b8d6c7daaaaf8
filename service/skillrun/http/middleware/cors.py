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
"""

from __future__ import annotations

from typing import Any, Sequence

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


class CorsMiddleware(CORSMiddleware):
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
