"""What the handlers share: JSON answers, the request's services, problems."""

from __future__ import annotations

import json
from typing import Any

import orjson
from connexion import request
from connexion.exceptions import ProblemException
from starlette.responses import Response

from ..errors import TITLES
from ..services import Services, services_of

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # An explicit media type: connexion cannot pick one itself when an operation
    # also declares problem+json answers. orjson writes the same compact JSON in a
    # fraction of the time; a string with a lone surrogate (which it refuses) goes
    # through the stdlib, escaped.
    try:
        body = orjson.dumps(data)
    except TypeError:
        body = _dumps(data).encode("utf-8", "backslashreplace")
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def services() -> Services:
    return services_of(request.scope)


def owner() -> str:
    """The caller's identity from the security check (never the key itself)."""
    return request.context.get("user") or "anonymous"


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> ProblemException:
    return ProblemException(status=status, title=TITLES.get(status), detail=detail, headers=headers)
