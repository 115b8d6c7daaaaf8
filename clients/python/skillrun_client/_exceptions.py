"""Every error this client raises.

    SkillrunError
    ├── APIStatusError              an HTTP error answer (.status_code, .problem, .response)
    │   ├── BadRequestError         400
    │   ├── AuthenticationError     401
    │   ├── NotFoundError           404
    │   ├── ConflictError           409
    │   ├── ValidationError         422 (.problem.errors names each failing field)
    │   ├── RateLimitError          429 (.retry_after, seconds)
    │   └── InternalServerError     5xx
    ├── APIConnectionError          no answer: refused, reset, DNS, protocol error
    │   └── APITimeoutError         no answer in time
    ├── StreamError                 a stream that could not be healed (.run_id, .last_event_id)
    └── RunFailedError              from RunResult.raise_for_status() (.result)

Other 4xx (413, 415, …) are a plain ``APIStatusError``. A run that ends ``failed`` is
not an exception while streaming: the events say so.

:func:`status_error` and :func:`connection_error` are the one place answers and
transport failures become these classes, for the sync and async client alike.
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any

import httpx
import pydantic

from ._generated.models import ExecuteResult, Problem

__all__ = [
    "SkillrunError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
    "StreamError",
    "RunFailedError",
]


class SkillrunError(Exception):
    """The base of every error this client raises."""


class APIStatusError(SkillrunError):
    """The server answered with an error status; ``problem`` is its RFC 9457 body."""

    def __init__(self, message: str, *, response: httpx.Response, problem: Problem) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.problem = problem
        self.request_id = response.headers.get("x-trace-id")


class BadRequestError(APIStatusError):
    """400: the body is not JSON or not UTF-8, or a parameter is malformed."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""


class NotFoundError(APIStatusError):
    """404: no such skill or run."""


class ConflictError(APIStatusError):
    """409: e.g. cancelling a run that has already ended."""


class ValidationError(APIStatusError):
    """422: the body breaks the schema; ``problem.errors`` names each failing field."""


class RateLimitError(APIStatusError):
    """429: the key's budget is used up; ``retry_after`` says for how many seconds."""

    def __init__(self, message: str, *, response: httpx.Response, problem: Problem) -> None:
        super().__init__(message, response=response, problem=problem)
        self.retry_after = retry_after(response.headers)


class InternalServerError(APIStatusError):
    """5xx: the server failed or is unavailable (503 while it drains)."""


class APIConnectionError(SkillrunError):
    """No answer: the connection was refused, reset or broke mid-response."""


class APITimeoutError(APIConnectionError):
    """No answer (or no byte of a stream) within the configured time."""


class StreamError(SkillrunError):
    """A stream that could not be resumed; says how far it got.

    ``last_event_id`` is the id of the last event delivered (None if none was), so a
    caller can pick up later with ``client.runs.events(run_id, after=last_event_id)``.
    """

    def __init__(self, message: str, *, run_id: str | None, last_event_id: str | None) -> None:
        super().__init__(f"{message} (run {run_id}, last event id {last_event_id})")
        self.run_id = run_id
        self.last_event_id = last_event_id


class RunFailedError(SkillrunError):
    """The run ended with a status other than ``completed``; ``result`` is its result."""

    # ExecuteResult, the generated base of RunResult: this module needs nothing hand-written.
    def __init__(self, result: ExecuteResult) -> None:
        detail = f": {result.error.kind}: {result.error.message}" if result.error else ""
        super().__init__(f"run {result.run_id} of {result.skill_id} ended {result.status}{detail}")
        self.result = result


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP date (RFC 9110, 10.2.3)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _problem(response: httpx.Response) -> Problem:
    """The parsed problem+json body; a minimal one when the body is something else."""
    try:
        body: Any = json.loads(response.content)
        return Problem.model_validate(body)
    except (ValueError, pydantic.ValidationError):
        return Problem(
            title=response.reason_phrase or "Error",
            status=response.status_code,
            detail=response.text[:500] or None,
        )


def status_error(response: httpx.Response) -> APIStatusError:
    """The exception for an error answer whose body has been read."""
    problem = _problem(response)
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(describe(response.status_code, problem), response=response, problem=problem)


def describe(status: int, problem: Problem) -> str:
    """``422 Title: detail (field: message; ...)``, naming each field error once: the ones
    the detail already says (the server's 422 detail quotes them) are not repeated."""
    message = f"{status} {problem.title}"
    if problem.detail:
        message += f": {problem.detail}"
    said = problem.detail or ""
    extra = [f"{e.field}: {e.message}" for e in problem.errors or [] if f"{e.field}: {e.message}" not in said]
    if extra:
        message += " (" + "; ".join(extra) + ")"
    return message


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    """The exception for a transport failure (raise it ``from exc``)."""
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    return cls(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
