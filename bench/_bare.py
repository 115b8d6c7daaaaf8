"""The baseline: a bare Starlette ``StreamingResponse`` streaming events shaped like ours.

Served by uvicorn like Skillrun, so a ratio measures what Skillrun adds on top.
"""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

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
    body = await request.json()
    return Response(json.dumps({"status": "completed", "outputs": {"summary": body["inputs"]["text"][:80]}}),
                    media_type="application/json")


app = Starlette(routes=[Route("/stream", stream, methods=["POST"]), Route("/execute", execute, methods=["POST"])])
