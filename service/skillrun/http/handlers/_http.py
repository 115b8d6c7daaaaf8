"""What the handlers share: JSON answers, the request's services, problems."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

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


@dataclass(frozen=True, slots=True)
class Caller:
    """What a handler needs of its request: the services, the key's identity, the
    request headers and the ASGI ``receive`` (after the body: the disconnect). Made
    by connexion's handlers (``connexion_caller``) and by the fast lane, which calls
    the same handler functions (``http/fastlane.py``)."""

    services: Services
    owner: str
    headers: Mapping[str, str]
    receive: Callable[[], Awaitable[Any]]
    # Called once the run exists (or its start failed): the fast lane's admission ends there.
    started: Callable[[], None] | None = None


def connexion_caller() -> Caller:
    return Caller(services(), owner(), request.headers, request._starlette_request.receive)
