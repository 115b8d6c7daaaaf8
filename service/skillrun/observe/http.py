"""The HTTP edge's observation: request duration by route template, the access log, the server span.

``ObserveMiddleware`` is the outermost layer (it sees 429s, 404s for unknown paths
and the stream's whole life). The route is the spec's path template of the operation
connexion matched, which only the routing layer knows: ``RouteMarker``, placed after
routing, writes it into the scope's ``state`` (the one part of the scope connexion's
routing copy shares with the outer layers). Unmatched paths share ``UNMATCHED``.
A stream's body may outlive this layer's frame (``http/handoff.py``): its duration,
access log line and metrics are then taken at the body's end, as before.
It also hands on connexion's request context, where the security check (just inside
it) writes the key's identity: the access log names the owner, never the key.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any, Mapping

from ..http.handoff import Handoff, handed_off, handoff_of
from .logs import ACCESS_LOGGER
from .metrics import UNMATCHED

if TYPE_CHECKING:
    from .hub import Observability

_ROUTE_KEY = "skillrun.route"
_CONTEXT_KEY = "skillrun.context"
_CONNEXION_CONTEXT = "connexion_context"
_ROUTING = "connexion_routing"
access_log = logging.getLogger(ACCESS_LOGGER)

# Served by connexion outside the spec's operations: fixed, so fine as labels.
_FIXED_ROUTES = frozenset({"/openapi.json", "/openapi.yaml", "/docs", "/docs/"})


class RouteTable:
    """operationId -> the spec's path template."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._by_operation: dict[str, str] = {}
        for path, item in spec.get("paths", {}).items():
            for op in item.values():
                if isinstance(op, dict) and "operationId" in op:
                    self._by_operation[op["operationId"]] = path

    def route(self, operation_id: str | None, path: str) -> str:
        if operation_id is not None:
            found = self._by_operation.get(operation_id)
            if found is not None:
                return found
        return path if path in _FIXED_ROUTES else UNMATCHED


class RouteMarker:
    """After connexion's routing: note the matched operation for ``ObserveMiddleware``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            routing = scope.get("extensions", {}).get(_ROUTING) or {}
            state = scope.get("state")
            if state is not None:
                state[_ROUTE_KEY] = routing.get("operation_id")
                # The very dict connexion's security check fills (``ConnexionRequest``
                # setdefaults it), so the owner is there once the key was accepted.
                state[_CONTEXT_KEY] = scope.setdefault("extensions", {}).setdefault(_CONNEXION_CONTEXT, {})
        await self.app(scope, receive, send)


def mark_route(scope: Any, operation_id: str, user: str) -> None:
    """What ``RouteMarker`` and connexion's security check note, for a request the
    fast lane (``http/fastlane.py``) serves without them."""
    state = scope.get("state")
    if state is not None:
        state[_ROUTE_KEY] = operation_id
        state[_CONTEXT_KEY] = {"user": user, "token_info": {"sub": user}}


def _headers(scope: Any) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class ObserveMiddleware:
    def __init__(self, app: Any, observe: "Observability", routes: RouteTable) -> None:
        self.app = app
        self.observe = observe
        self.routes = routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "bytes": 0, "run_id": None, "trace_id": None}

        async def observed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", []):
                    lowered = name.lower()
                    if lowered == b"x-run-id":
                        seen["run_id"] = value.decode("latin-1")
                    elif lowered == b"x-trace-id":
                        seen["trace_id"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        tracing = self.observe.tracing
        method = scope["method"]
        if tracing is None:
            try:
                await self.app(scope, receive, observed_send)
            finally:
                handoff = handed_off(scope)
                if handoff is not None:
                    # A stream's body goes on after this frame is gone (``http/handoff.py``):
                    # its duration and bytes are known at its end.
                    handoff.at_end(functools.partial(self._done_handed, handoff, scope, state, method, started, seen))
                else:
                    self._done(scope, state, method, started, seen, None)
            return
        # The span is entered in this frame and must end in it: no handoff.
        handoff = handoff_of(scope)
        if handoff is not None:
            handoff.forbid()
        with tracing.server_span(method, _headers(scope), scope["path"]) as span:
            try:
                await self.app(scope, receive, observed_send)
            finally:
                self._done(scope, state, method, started, seen, span)

    def _done_handed(self, handoff: Handoff, scope: Any, state: dict[str, Any], method: str, started: float,
                     seen: dict[str, Any]) -> None:
        seen["bytes"] += handoff.sent  # the body's, sent past ``observed_send``
        self._done(scope, state, method, started, seen, None)

    def _done(self, scope: Any, state: dict[str, Any], method: str, started: float, seen: dict[str, Any], span: Any) -> None:
        seconds = time.perf_counter() - started
        route = self.routes.route(state.get(_ROUTE_KEY), scope["path"])
        status = seen["status"]
        metrics = self.observe.metrics
        if metrics is not None:
            metrics.child(metrics.http_duration, method, route, str(status)).observe(seconds)
        if span is not None and self.observe.tracing is not None:
            self.observe.tracing.finish_server_span(span, method, route, status)
        if access_log.isEnabledFor(logging.INFO):
            duration_ms = round(seconds * 1000, 3)
            owner = _owner(state)
            access_log.info(
                "%s %s %d %.1f ms %d B%s", method, route, status, duration_ms, seen["bytes"],
                f" {owner}" if owner else "",
                extra={"method": method, "route": route, "status": status, "duration_ms": duration_ms,
                       "bytes": seen["bytes"], "run_id": seen["run_id"], "trace_id": seen["trace_id"],
                       "owner": owner},
            )


def _owner(state: Mapping[str, Any]) -> str | None:
    """The key's identity (``key_<hash prefix>``) the security check accepted, if it did;
    never the key: ``auth.apikey_info`` only ever gives the identity as ``sub``."""
    context = state.get(_CONTEXT_KEY)
    user = context.get("user") if isinstance(context, dict) else None
    return user if isinstance(user, str) else None
