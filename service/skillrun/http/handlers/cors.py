"""OPTIONS on an API path that is *not* a CORS preflight.

Real preflights (``Origin`` + ``Access-Control-Request-Method``) never get here:
``skillrun.http.middleware.cors.CorsMiddleware`` answers them before routing and before the
security check. Anything else that asks OPTIONS gets an empty 204.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response


async def preflight(**_params: Any) -> Response:
    return Response(status_code=204)
