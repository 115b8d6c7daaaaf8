"""Liveness and readiness: no key, no rate limit."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ... import __version__
from ._http import json_response, problem, services


async def live() -> Response:
    return json_response({"status": "ok", "version": __version__})


async def ready() -> Response:
    s = services()
    if s.runs.draining:
        raise problem(503, "The server is shutting down.", headers={"Retry-After": "5"})
    kind = s.store.kind
    if not await s.store.check():
        raise problem(503, f"The run store ({kind}) is unreachable.", headers={"Retry-After": "5"})
    body: dict[str, Any] = {"status": "ok", "version": __version__, "skills": len(s.catalog)}
    if s.load_report is not None:
        body["skills_skipped"] = s.load_report.skills_skipped
    body["store"] = {"kind": kind, "reachable": True}
    return json_response(body)


async def health_legacy() -> Response:
    return await ready()
