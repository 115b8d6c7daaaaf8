"""``GET /metrics``: the Prometheus scrape (no key, no rate limit; OpenMetrics on ``Accept``)."""

from __future__ import annotations

from connexion import request
from starlette.responses import Response

from ._http import problem, services


async def metrics() -> Response:
    s = services()
    m = s.observe.metrics
    if m is None:
        raise problem(404, "Metrics are off on this server (SKILLRUN_METRICS=0).")
    if s.settings.metrics_port is not None:
        raise problem(404, f"Metrics are served on their own port ({s.settings.metrics_port}).")
    body, content_type = m.exposition(request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})
