"""RFC 9457 problems (``application/problem+json``), for middleware that answers itself.

Handlers and validators raise connexion's ``ProblemException`` (connexion turns it
into the same body); middleware below connexion's exception handling sends
``problem_response`` directly.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from connexion.exceptions import ProblemException
from starlette.responses import Response

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    431: "Request Header Fields Too Large",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def problem_body(status: int, detail: str, **ext: Any) -> dict[str, Any]:
    return {
        "type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
        "detail": echo(detail, _DETAIL_CHARS), **ext,
    }


def problem_response(
    status: int, detail: str, headers: dict[str, str] | None = None, **ext: Any
) -> Response:
    return Response(
        json.dumps(problem_body(status, detail, **ext)),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


# A problem names the bad value it got, but only a prefix: a 60 KB id must not
# come back whole (nor fill the log).
ECHO_CHARS = 64
_DETAIL_CHARS = 1000
_FIELD_CHARS = 200


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """``value`` as text, cut to ``limit`` characters (with ``…``) if longer."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_problem(_request: Any, exc: ProblemException) -> Any:
    """connexion's problem handler, with every text of the problem cut to a bounded
    prefix: the safety net for values echoed by code that is not ours (connexion's
    own messages quote query parameter names and Content-Types)."""
    ext = exc.ext
    if isinstance(ext, dict) and isinstance(ext.get("errors"), list):
        errors = [
            {k: echo(v, _FIELD_CHARS) if isinstance(v, str) else v for k, v in e.items()} if isinstance(e, dict) else e
            for e in ext["errors"]
        ]
        ext = {**ext, "errors": errors}
    bounded = ProblemException(
        status=exc.status,
        title=exc.title,
        detail=echo(exc.detail, _DETAIL_CHARS) if isinstance(exc.detail, str) else exc.detail,
        type=exc.type,
        instance=exc.instance,
        headers=exc.headers,
        ext=ext,
    )
    log.log(logging.WARNING if exc.status < 500 else logging.ERROR, "%s %s: %s", exc.status, exc.title, bounded.detail)
    return bounded.to_problem()


def store_unavailable(_request: Any, exc: Exception) -> Any:
    """The run store cannot be reached (a Redis outage): 503 with ``Retry-After``, never a 500."""
    retry_after = str(getattr(exc, "retry_after_s", 2))
    log.error("503: the run store is unreachable: %s", exc)
    # connexion's exception middleware wants its own response type: a problem's.
    return ProblemException(
        status=503, title=TITLES.get(503), detail="The run store is unreachable; retry shortly.",
        headers={"Retry-After": retry_after},
    ).to_problem()
