"""RFC 9457 problems (``application/problem+json``), for middleware that answers itself.

Handlers and validators raise connexion's ``ProblemException`` (connexion turns it
into the same body); middleware below connexion's exception handling sends
``problem_response`` directly.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def problem_body(status: int, detail: str, **ext: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail, **ext}


def problem_response(
    status: int, detail: str, headers: dict[str, str] | None = None, **ext: Any
) -> Response:
    return Response(
        json.dumps(problem_body(status, detail, **ext)),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )
