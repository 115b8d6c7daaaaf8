"""Run a skill: ``/execute`` waits for the run's ``done``; ``/execute/stream`` follows it live.

Both start a run and then only *follow* its event log; neither talks to the engine.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from connexion import request
from starlette.responses import Response, StreamingResponse

from .. import sse
from ..engine import Skill
from ..runs import RunRecord, ShuttingDown, follow
from ..services import Services
from ._http import json_response, owner, problem, services


def _skill(s: Services, skill_id: str) -> Skill:
    skill = s.catalog.get(skill_id)
    if skill is None:
        raise problem(404, f"No skill '{skill_id}' is loaded.")
    return skill


async def _start(skill_id: str, body: dict[str, Any], channel: str) -> tuple[Services, RunRecord]:
    s = services()
    skill = _skill(s, skill_id)
    options = body.get("options") or {}
    timeout_ms = options.get("timeout_ms")
    try:
        run = await s.runs.start(
            skill,
            body["inputs"],
            owner=owner(),
            channel=channel,
            trace_id=request.headers.get("x-trace-id"),
            timeout_s=timeout_ms / 1000 if timeout_ms else None,
        )
    except ShuttingDown:
        raise problem(503, "The server is shutting down and starts no new runs.", {"Retry-After": "5"}) from None
    return s, run


def _run_headers(run: RunRecord) -> dict[str, str]:
    return {"x-trace-id": run.trace_id, "X-Run-Id": run.run_id}


async def execute(skill_id: str, body: dict[str, Any]) -> Response:
    s, run = await _start(skill_id, body, "http")
    last = None
    async for batch in follow(s.store, run.run_id):
        last = batch[-1] if batch else last
    assert last is not None and last.type == "done"
    result = json.loads(last.data)
    del result["type"]
    return json_response(result, headers=_run_headers(run))


async def execute_stream(skill_id: str, body: dict[str, Any]) -> Response:
    s, run = await _start(skill_id, body, "http-stream")
    return StreamingResponse(
        _frames(s, run.run_id, after=0),
        media_type=sse.MEDIA_TYPE,
        headers={**sse.HEADERS, **_run_headers(run)},
    )


async def _frames(s: Services, run_id: str, after: int) -> AsyncIterator[bytes]:
    # A client that goes away cancels this generator: that ends the view, not the run.
    async for batch in follow(s.store, run_id, after, idle_s=s.settings.heartbeat_s):
        yield sse.encode(batch) if batch else sse.PING
