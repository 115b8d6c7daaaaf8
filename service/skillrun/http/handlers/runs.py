"""Runs: get (or long-poll), list, follow or resume the events of, cancel, delete.

A run is visible to its owner only; for any other key it does not exist (404,
never 403, so run ids cannot be probed).
"""

from __future__ import annotations

import asyncio
from typing import Any

from connexion.exceptions import ProblemException
from starlette.responses import Response

from ...engine.waiting import NotWaiting
from ...runs import BadCursor, RunFinished, RunRecord
from ...runs.follow import last_seq_if_past
from ...runs.manager import AnswerInvalid
from ...runs.store import TERMINAL
from ..errors import TITLES, echo
from ..services import Services
from ._http import Caller, connexion_caller, json_response, owner, problem, services
from ._stream import EventStreamResponse, RunFrames


def run_location(run_id: str) -> str:
    return f"/v1/runs/{run_id}"


def run_json(run: RunRecord, *, full: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run_id": run.run_id,
        "skill_id": run.skill_id,
        "status": run.status,
        "owner": run.owner,
        "trace_id": run.trace_id,
        "channel": run.channel,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }
    if full:
        out["inputs"] = run.inputs
        if run.result is not None:
            out["result"] = run.result
    return out


async def _own_run(run_id: str) -> RunRecord:
    return await _visible(services(), owner(), run_id)


async def _visible(s: Services, owner: str, run_id: str) -> RunRecord:
    run = await s.store.get(run_id)
    if run is None or run.owner != owner:
        raise problem(404, f"No run '{echo(run_id)}' is visible to this key.")
    return run


async def get_run(run_id: str, wait: float | None = None) -> Response:
    run = await _own_run(run_id)
    if wait and run.status not in TERMINAL:
        run = await _until_ended(run, wait)
    return json_response(run_json(run), headers={"x-trace-id": run.trace_id, "X-Run-Id": run.run_id})


# Past every sequence number a log can reach: the store's ``wait`` then returns only
# once the log is closed, or when it changes (or at the timeout).
_AT_THE_END = 2**62


async def _until_ended(run: RunRecord, wait_s: float) -> RunRecord:
    """The run once it has ended, or as it stands after ``wait_s`` (the spec caps it at 60).

    Woken by the store's notification when the log changes, never by polling.
    """
    store = services().store
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while run.status not in TERMINAL and (left := deadline - loop.time()) > 0:
        await store.wait(run.run_id, _AT_THE_END, left)
        now = await store.get(run.run_id)
        if now is None:  # deleted or purged meanwhile: answer with what we had
            break
        run = now
    return run


async def list_runs(
    status: str | None = None, skill_id: str | None = None, limit: int = 20, cursor: str | None = None
) -> Response:
    try:
        page = await services().store.list_runs(
            owner(), statuses=None if status is None else {status}, skill_id=skill_id, limit=limit, cursor=cursor
        )
    except BadCursor:
        raise problem(400, "cursor: not a cursor this server gave out (use next_cursor as it came).") from None
    return json_response(
        {"runs": [run_json(r, full=False) for r in page.runs], "next_cursor": page.next_cursor}
    )


async def run_events(run_id: str, after: int | None = None) -> Response:
    return await run_events_for(connexion_caller(), run_id, after)


async def run_events_for(caller: Caller, run_id: str, after: int | None) -> Response:
    """The events of the caller's run from its cursor: connexion's handler's and the
    fast lane's (``http/fastlane.py``), which checked the same parameters first."""
    s = caller.services
    run = await _visible(s, caller.owner, run_id)
    # EventSource sends Last-Event-ID on every reconnect, while the URL keeps the
    # first ?after=: the header is the newer cursor. The spec checked it is digits.
    last_event_id = caller.headers.get("last-event-id")
    cursor = int(last_event_id) if last_event_id else (after or 0)
    last = await last_seq_if_past(s.store, run.run_id, cursor)
    if last is not None:
        # An id this run never issued: following from it would skip events that come later.
        field = "Last-Event-ID" if last_event_id else "after"
        message = f"{cursor} is past the end of this run's log (its last id is {last})"
        raise ProblemException(
            status=409, title=TITLES[409], detail=f"{field}: {message}.",
            ext={"errors": [{"field": field, "message": message}]},
        )
    return EventStreamResponse(
        RunFrames(s, run.run_id, cursor),
        headers={"x-trace-id": run.trace_id, "X-Run-Id": run.run_id},
        send_timeout_s=s.settings.send_timeout_s,
    )


async def cancel_run(run_id: str) -> Response:
    run = await _own_run(run_id)
    try:
        run = await services().runs.cancel(run_id)
    except RunFinished as ended:
        raise problem(409, f"Run '{echo(run_id)}' has already ended ({ended}).") from None
    except KeyError:  # purged between the two reads
        raise problem(404, f"No run '{echo(run_id)}' is visible to this key.") from None
    return json_response(
        run_json(run), status=202, headers={"X-Run-Id": run.run_id, "Location": run_location(run.run_id)}
    )


async def delete_run(run_id: str) -> Response:
    run = await _own_run(run_id)
    if run.status not in TERMINAL:
        raise problem(
            409, f"Run '{echo(run_id)}' is still {run.status}; cancel it and wait for its end before deleting it."
        )
    if not await services().runs.delete(run_id):  # purged between the two reads
        raise problem(404, f"No run '{echo(run_id)}' is visible to this key.")
    return Response(status_code=204)


async def answer_run(run_id: str, body: dict[str, Any]) -> Response:
    """The answer to a step waiting for input (``human.input``): 202 once recorded."""
    run = await _own_run(run_id)
    step_id, index = body["step_id"], body.get("index")
    step = f"step '{echo(step_id)}'" + (f" item {index}" if index is not None else "")
    try:
        await services().runs.answer(run, step_id, index, body["value"])
    except AnswerInvalid as bad:
        raise ProblemException(
            status=422, title=TITLES[422], detail=f"{bad.field}: {bad.message}",
            ext={"errors": [{"field": bad.field, "message": bad.message}]},
        ) from None
    except RunFinished as ended:
        raise problem(409, f"Run '{echo(run_id)}' has already ended ({ended}); {step} waits for nothing.") from None
    except NotWaiting as why:
        raise problem(409, f"In run '{echo(run_id)}', {step} does not wait for input: {why}.") from None
    fresh = await services().store.get(run_id) or run
    return json_response(
        run_json(fresh), status=202, headers={"X-Run-Id": run.run_id, "Location": run_location(run.run_id)}
    )
