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
    405: "Method Not Allowed",
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


# connexion's security check says "token" and "apikey"; a user needs the header's name.
_MISSING_KEY = "No x-api-key header: send an API key in the x-api-key header."
_UNAUTHORIZED = {
    "No authorization token provided": _MISSING_KEY,
    "Provided apikey is not valid": "The x-api-key header holds no key this server knows.",
}


def _unauthorized_detail(detail: Any) -> Any:
    return _UNAUTHORIZED.get(detail, detail) if isinstance(detail, str) and "x-api-key" not in detail else detail


def bounded_problem(_request: Any, exc: ProblemException) -> Any:
    """connexion's problem handler, with every text of the problem cut to a bounded
    prefix: the safety net for values echoed by code that is not ours (connexion's
    own messages quote query parameter names and Content-Types). A 401 names the
    ``x-api-key`` header."""
    detail = _unauthorized_detail(exc.detail) if exc.status == 401 else exc.detail
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
        detail=echo(detail, _DETAIL_CHARS) if isinstance(detail, str) else detail,
        type=exc.type,
        instance=exc.instance,
        headers=exc.headers,
        ext=ext,
    )
    _log_problem(exc.status, str(exc.title), str(bounded.detail))
    return bounded.to_problem()


def _log_problem(status: int, title: str, detail: str) -> None:
    """A client's mistake (4xx) is routine: INFO, one line, no traceback. Only the
    server's own faults are ERROR (connexion logs 4xx as warnings, with a repr).
    A 4xx's detail echoes what the client sent (a path segment, a header), which may
    be a key pasted in the wrong place: it goes to DEBUG only."""
    if status >= 500:
        log.error("%s %s: %s", status, title, detail)
        return
    log.info("%s %s", status, title)
    log.debug("%s %s: %s", status, title, detail)


def http_problem(_request: Any, exc: Any) -> Any:
    """Starlette's ``HTTPException`` (unknown path: 404, wrong method: 405) as a problem."""
    detail = echo(str(exc.detail), _DETAIL_CHARS)
    _log_problem(exc.status_code, TITLES.get(exc.status_code, "Error"), detail)
    return ProblemException(
        status=exc.status_code, title=TITLES.get(exc.status_code, "Error"), detail=detail, headers=exc.headers
    ).to_problem()


def store_unavailable(_request: Any, exc: Exception) -> Any:
    """The run store cannot be reached (a Redis outage): 503 with ``Retry-After``, never a 500."""
    retry_after = str(getattr(exc, "retry_after_s", 2))
    log.error("503: the run store is unreachable: %s", exc)
    # connexion's exception middleware wants its own response type: a problem's.
    return ProblemException(
        status=503, title=TITLES.get(503), detail="The run store is unreachable; retry shortly.",
        headers={"Retry-After": retry_after},
    ).to_problem()
