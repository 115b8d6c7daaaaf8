"""The baseline: a bare Starlette ``StreamingResponse`` streaming events shaped like ours.

Served by uvicorn like Skillrun, so a ratio measures what Skillrun adds on top. ``/execute``
does text.summarize's text work with the same functions (a floor without it would ask
Skillrun to beat the work itself: the text work alone is ~0.4 ms, the echo ~0.1 ms);
``/echo`` is that bare round trip, printed beside it.
"""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from skillrun.capabilities.text import _keywords as keywords_of
from skillrun.capabilities.text import _summary as extractive_summary
from skillrun.capabilities.text import split_sentences

# One event of about the size of a demo.ticker step_completed event.
_EVENT = json.dumps(
    {
        "type": "step_completed",
        "message": "Step 'tick' completed.",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "step_id": "tick",
        "trace_id": "0" * 32,
        "run_id": "run_" + "0" * 24,
        "data": {"produced_output": {"slept_ms": 0}, "duration_ms": 0.02, "index": 0},
    },
    separators=(",", ":"),
)


async def stream(request: Request) -> Response:
    body = await request.json()
    n = int(body["inputs"]["events"])
    delay = int(body["inputs"].get("delay_ms", 0)) / 1000

    async def gen():
        for i in range(1, n + 1):
            yield f"id: {i}\nevent: step_completed\ndata: {_EVENT}\n\n".encode()
            if delay and i < n:
                await asyncio.sleep(delay)

    return StreamingResponse(gen(), media_type="text/event-stream")


async def execute(request: Request) -> Response:
    """The least text.summarize's request needs: its text work (the same functions), as JSON."""
    inputs = (await request.json())["inputs"]
    sentences = split_sentences(inputs["text"])
    summary = extractive_summary({"sentences": sentences, "max_sentences": inputs.get("max_sentences", 2)})
    keywords = keywords_of({"text": inputs["text"], "limit": 8})
    return Response(json.dumps({"status": "completed", "outputs": {**summary, **keywords}}),
                    media_type="application/json")


async def echo(request: Request) -> Response:
    """Less than the request needs (no text work): the floor of the HTTP round trip alone."""
    body = await request.json()
    return Response(json.dumps({"status": "completed", "outputs": {"summary": body["inputs"]["text"][:80]}}),
                    media_type="application/json")


app = Starlette(routes=[
    Route("/stream", stream, methods=["POST"]),
    Route("/execute", execute, methods=["POST"]),
    Route("/echo", echo, methods=["POST"]),
])
