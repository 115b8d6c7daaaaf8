"""Run a skill: ``/execute`` waits for the run's ``done``; ``/execute/stream`` follows it
live; ``/execute/async`` answers at once with the run.

All three start a run (or, for a repeated ``Idempotency-Key``, find the earlier
one) and then only *follow* its event log; none talks to the engine.

Each is a thin connexion handler over a ``*_for(caller, ...)`` function that takes
what it needs of the request explicitly (``Caller``): the fast lane
(``http/fastlane.py``) calls those directly for requests it has checked itself.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from connexion import request
from connexion.exceptions import ProblemException
from starlette.responses import Response

from ...engine import Skill
from ...events import DONE, result_of_done
from ...observe.tracing import incoming_trace_id
from ...runs import IdempotencyConflict, RunRecord, ShuttingDown, follow, request_hash
from ...runs.quotas import QuotaExceeded
from ..errors import TITLES
from ..services import Services
from ._http import Caller, connexion_caller, json_response, problem
from ._stream import EventStreamResponse, RunFrames
from .runs import run_json, run_location

# Set (to "true") when a repeated Idempotency-Key found the earlier run: nothing new started.
REPLAYED_HEADER = "Idempotent-Replayed"


def _skill(s: Services, skill_id: str) -> Skill:
    skill = s.catalog.get(skill_id)
    if skill is None:
        raise problem(404, f"No skill '{skill_id}' is loaded.")
    return skill




async def _start(
    caller: Caller, skill_id: str, body: dict[str, Any], channel: str
) -> tuple[RunRecord, dict[str, str]]:
    """The run (new, or the earlier one of a repeated ``Idempotency-Key``) and the
    headers every answer about it carries."""
    s = caller.services
    skill = _skill(s, skill_id)
    options = body.get("options") or {}
    timeout_ms = options.get("timeout_ms")
    key = caller.headers.get("idempotency-key")
    try:
        run, replayed = await s.runs.start_or_replay(
            skill,
            body["inputs"],
            owner=caller.owner,
            channel=channel,
            # A W3C traceparent names the trace; else x-trace-id (see observe/tracing.py).
            trace_id=incoming_trace_id(caller.headers, s.observe.tracing),
            timeout_s=timeout_ms / 1000 if timeout_ms else None,
            idempotency_key=key,
            request_hash=request_hash(skill_id, body) if key is not None else None,
        )
    except QuotaExceeded as exc:
        raise problem(exc.status, exc.detail, {"Retry-After": str(exc.retry_after_s)}) from None
    except ShuttingDown:
        raise problem(503, "The server is shutting down and starts no new runs.", {"Retry-After": "5"}) from None
    except IdempotencyConflict as exc:
        message = f"already used for a different request (run {exc.run.run_id})"
        # 409, not 422: the request is valid; it conflicts with the run the key names.
        raise ProblemException(
            status=409,
            title=TITLES[409],
            detail=f"Idempotency-Key: {message}; use a new key for a new request.",
            ext={"errors": [{"field": "Idempotency-Key", "message": message}]},
        ) from None
    finally:
        if caller.started is not None:
            caller.started()
    return run, _run_headers(run, replayed)


def _run_headers(run: RunRecord, replayed: bool) -> dict[str, str]:
    headers = {"x-trace-id": run.trace_id, "X-Run-Id": run.run_id}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    return headers


def _cancels_on_disconnect(body: dict[str, Any]) -> bool:
    return (body.get("options") or {}).get("on_disconnect") == "cancel"


async def _client_gone(receive: Callable[[], Awaitable[Any]]) -> None:
    """Returns when the client of this (already read) request disconnects."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def execute_for(caller: Caller, skill_id: str, body: dict[str, Any]) -> Response:
    s = caller.services
    run, headers = await _start(caller, skill_id, body, "http")
    watcher = None
    if _cancels_on_disconnect(body):
        async def cancel_when_gone() -> None:
            await _client_gone(caller.receive)
            s.runs.cancel_soon(run.run_id)

        watcher = asyncio.create_task(cancel_when_gone())
    last = None
    try:
        async for batch in follow(s.store, run.run_id):
            last = batch[-1] if batch else last
    finally:
        if watcher is not None:
            watcher.cancel()
    assert last is not None and last.type == DONE
    result = result_of_done(last.data)
    return json_response(result, headers=headers)


async def execute_stream_for(caller: Caller, skill_id: str, body: dict[str, Any]) -> Response:
    s = caller.services
    run, headers = await _start(caller, skill_id, body, "http-stream")
    on_abandon = (lambda: s.runs.cancel_soon(run.run_id)) if _cancels_on_disconnect(body) else None
    return EventStreamResponse(
        RunFrames(s, run.run_id, after=0),
        headers=headers,
        send_timeout_s=s.settings.send_timeout_s,
        on_abandon=on_abandon,
    )


async def execute_async_for(caller: Caller, skill_id: str, body: dict[str, Any]) -> Response:
    run, headers = await _start(caller, skill_id, body, "http-async")
    return json_response(run_json(run), status=202, headers={**headers, "Location": run_location(run.run_id)})


# connexion's handlers (the spec's operationIds).

async def execute(skill_id: str, body: dict[str, Any]) -> Response:
    return await execute_for(connexion_caller(), skill_id, body)


async def execute_stream(skill_id: str, body: dict[str, Any]) -> Response:
    return await execute_stream_for(connexion_caller(), skill_id, body)


async def execute_async(skill_id: str, body: dict[str, Any]) -> Response:
    return await execute_async_for(connexion_caller(), skill_id, body)


# By operation (the operationId's part before ``__``): what the fast lane calls.
BY_OPERATION: dict[str, Callable[[Caller, str, dict[str, Any]], Awaitable[Response]]] = {
    "execute": execute_for,
    "execute_stream": execute_stream_for,
    "execute_async": execute_async_for,
}
