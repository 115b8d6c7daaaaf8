"""One request, sent until it succeeds or its retry policy gives up.

:class:`Call` is a request as data (built afresh for every attempt); :func:`send` and
:func:`asend` are the one send loop of the sync and async client, used by every plain
call and by every connection a stream opens. The policy (``_retry.RequestRetry`` or a
stream's ``ResumeState``) decides whether and when to try again; this module only sends
and sleeps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote

import anyio
import httpx

from ._exceptions import APIConnectionError, SkillrunError, connection_error, status_error
from ._retry import RetryPolicy


@dataclass
class Call:
    """One HTTP request as data: built into an ``httpx.Request`` for every attempt."""

    method: str
    base_url: str
    path: str
    headers: dict[str, str] = field(default_factory=dict[str, str])
    params: dict[str, Any] = field(default_factory=dict[str, Any])
    json: Any = None
    timeout: httpx.Timeout | None = None

    def build(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        # An absolute URL, so an http_client of the caller's own needs no base_url.
        return http.build_request(
            self.method, self.base_url.rstrip("/") + self.path,
            headers=self.headers, params=self.params, json=self.json, timeout=self.timeout,
        )  # fmt: skip


def segment(value: str) -> str:
    """``value`` as one path segment, so that no id (``a?b``, ``a#b``, ``..``) reaches
    another route: the server answers for the id as given."""
    if value in (".", ".."):  # dot segments would be resolved away (RFC 3986, 5.2.4)
        return value.replace(".", "%2E")
    return quote(value, safe="")


def dropped(exc: httpx.TransportError | None) -> APIConnectionError:
    """The error for a connection that failed (``exc``) or ended early (None)."""
    if exc is None:
        return APIConnectionError("the connection closed before the done event")
    error = connection_error(exc)
    error.__cause__ = exc
    return error


def send(http: httpx.Client, make_call: Callable[[], Call], policy: RetryPolicy, *, stream: bool = False) -> httpx.Response:
    """Send until an answer is a success or ``policy`` gives up (it raises)."""
    while True:
        error: SkillrunError
        try:
            response = http.send(make_call().build(http), stream=stream)
            if response.is_success:
                return response
            response.read()
            response.close()
            error = status_error(response)
        except httpx.TransportError as exc:
            error = dropped(exc)
        time.sleep(policy.next_delay(error))


async def asend(
    http: httpx.AsyncClient, make_call: Callable[[], Call], policy: RetryPolicy, *, stream: bool = False
) -> httpx.Response:
    """The ``async`` twin of :func:`send`."""
    while True:
        error: SkillrunError
        try:
            response = await http.send(make_call().build(http), stream=stream)
            if response.is_success:
                return response
            await response.aread()
            await response.aclose()
            error = status_error(response)
        except httpx.TransportError as exc:
            error = dropped(exc)
        await anyio.sleep(policy.next_delay(error))
