"""The fast lane: a loaded skill's execute operations and a run's follow, on their happy path, in one layer.

Starting a run is the request users make most, and connexion spends more CPU on its
way there than the run itself (in-process, ``/execute`` of a one-step skill took
~1.4 ms, half of it routing through a starlette Router of every per-skill route,
the security layer, the validation layer with a jsonschema validator per request,
the context layer and the handler decorators). This layer, inside connexion's
exception middleware and before its routing, answers the requests it can prove
valid itself, with what the spec says of their operation, built once at start:

- the route: ``POST`` to a per-skill path of the served spec (``x-skillrun-skill``),
  no query string;
- the key: ``x-api-key`` is a known key (the spec's only security scheme);
- the body: ``application/json`` with a Content-Length within
  ``SKILLRUN_MAX_BODY_BYTES``, all of it in by its deadline, that parses, and that its
  operation's request schema accepts (``jsonschema_rs``; the stdlib validator for a
  schema using a keyword whose meaning the two libraries might read differently);
- the header parameters: each one sent passes the same check connexion's makes.

Then it draws on the key's rate limit (the same function as the rate-limit
layer: one hit per request), marks the route and the caller for the access log
and metrics, and calls the same handler function connexion's handler calls.

A run's follow (``GET /v1/runs/{run_id}/events``: every reconnect, every
follower that joins a run on another node) takes the lane too when it is as
plain: a known key, a run id its path parameter's schema accepts, no query
string or just ``after=<digits>`` its schema accepts, a ``Last-Event-ID`` its
header parameter accepts, no body. Through connexion a follow's start cost
~1.5 ms of a loaded node's CPU before its first event.

Every other request, and any request it has any doubt about, goes on to
connexion untouched (a body it read is handed on as it came): every error a
client can cause (401, 404, 413, 415, 422, 400, 408 ...) is still connexion's
and the validation layer's answer, word for word. The handler's own problems
(409, 429 quotas, 503) are raised inside connexion's exception middleware, so
they are answered by the same handlers too. With ``SKILLRUN_VALIDATE_RESPONSES``
(the tests) the answers it makes are checked against the spec as connexion checks
its own.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import jsonschema_rs
import orjson
from connexion.exceptions import NonConformingResponseBody
from starlette._utils import get_route_path
from starlette.datastructures import Headers

from ..observe.http import mark_route
from .edge import HEAD_DONE_AT, body_arrived
from .handlers._http import Caller
from .handlers.execute import BY_OPERATION
from .handlers.runs import run_events_for
from .middleware.bodylimit import normalize_content_type
from .middleware.ratelimit import draw
from .security import API_KEY_HEADER
from .services import services_of
from .spec import SKILL_KEY
from .validation import JSONBodyValidator, ParamValidator

log = logging.getLogger(__name__)

_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})
# Keywords whose reading by jsonschema_rs might differ from the stdlib validator's
# (formats, regex dialects, OpenAPI's read/write-only): a schema with one is checked
# by the stdlib validator, as in the validation layer.
_DELICATE = frozenset({"format", "pattern", "patternProperties", "readOnly", "writeOnly"})
# As in validation.py: an escaped lone surrogate gets the validation layer's 422.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _keywords(schema: Any) -> set[str]:
    found: set[str] = set()
    stack = [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            found.update(k for k in value if isinstance(k, str))
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def _resolve(spec: dict[str, Any], value: Any) -> Any:
    """A local ``$ref`` (``#/components/...``) to what it names (a chain of them too;
    a cycle raises ``ValueError``)."""
    for _ in range(64):
        if not (isinstance(value, dict) and isinstance(value.get("$ref"), str) and value["$ref"].startswith("#/")):
            return value
        node: Any = spec
        for part in value["$ref"][2:].split("/"):
            node = node[part]
        value = node
    raise ValueError("a $ref cycle")


def _inlined(spec: dict[str, Any], schema: Any, refs: int = 0) -> Any:
    """``schema`` with its local ``$ref``s replaced by what they name (the spec's
    schemas are not recursive; a bound on ``$ref``s followed keeps one from looping)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            if refs >= 64:
                raise ValueError("a $ref cycle, or $refs nested too deeply to inline")
            return _inlined(spec, _resolve(spec, schema), refs + 1)
        return {k: _inlined(spec, v, refs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inlined(spec, v, refs) for v in schema]
    return schema


@dataclass(frozen=True, slots=True)
class _Route:
    operation_id: str
    skill_id: str
    handler: Callable[[Caller, str, dict[str, Any]], Awaitable[Any]]
    is_valid: Callable[[Any], bool]
    # Header name (lower-case bytes) -> the spec's parameter, checked as connexion checks it.
    parameters: dict[bytes, dict[str, Any]]
    # Status -> a check of a JSON answer (only with response validation on).
    answers: dict[int, Callable[[Any], bool]]


def _body_check(schema: Any) -> Callable[[Any], bool]:
    if _keywords(schema) & _DELICATE:
        stdlib = JSONBodyValidator._compiled(schema)
        return lambda body: next(iter(stdlib.iter_errors(body)), None) is None
    return jsonschema_rs.Draft4Validator(schema).is_valid


def routes_of(spec: dict[str, Any], validate_responses: bool) -> dict[str, _Route]:
    """The fast lane's table: each per-skill execute path of the served spec. An
    operation the lane cannot take (a schema it cannot compile, a query parameter)
    is left to connexion, never a reason not to start."""
    table: dict[str, _Route] = {}
    for path, item in spec.get("paths", {}).items():
        op = item.get("post")
        if not isinstance(op, dict) or SKILL_KEY not in op:
            continue
        try:
            route = _route_of(spec, op, validate_responses)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:  # jsonschema_rs raises ValueError
            log.info("%s: served without the fast lane (%s)", op["operationId"], exc)
            continue
        if route is not None:
            table[path] = route
    return table


def _route_of(spec: dict[str, Any], op: dict[str, Any], validate_responses: bool) -> _Route | None:
    handler = BY_OPERATION.get(op["operationId"].split("__", 1)[0])
    content = _resolve(spec, op.get("requestBody", {})).get("content", {})
    if handler is None or "application/json" not in content:
        return None
    schema = _inlined(spec, content["application/json"].get("schema", {}))
    parameters: dict[bytes, dict[str, Any]] = {}
    for parameter in op.get("parameters", []):
        parameter = _resolve(spec, parameter)
        if parameter.get("in") != "header":
            return None  # a query or path parameter: connexion's to parse
        parameters[parameter["name"].lower().encode("latin-1")] = _inlined(spec, parameter)
    answers: dict[int, Callable[[Any], bool]] = {}
    if validate_responses:
        for status, response in op.get("responses", {}).items():
            body = _resolve(spec, response).get("content", {}).get("application/json")
            if status.isdigit() and body and "schema" in body:
                answers[int(status)] = _body_check(_inlined(spec, body["schema"]))
    return _Route(op["operationId"], op[SKILL_KEY], handler, _body_check(schema), parameters, answers)


_FOLLOW_OPERATION = "run_events"
_AFTER = re.compile(rb"after=([0-9]{1,18})")


@dataclass(frozen=True, slots=True)
class _FollowRoute:
    """``GET`` a run's events: its path around the run id, and its parameters' checks."""

    prefix: str
    suffix: str
    run_id: Callable[[str], bool]
    after: Callable[[int], bool]
    # Header name (lower-case bytes) -> the spec's parameter, checked as connexion checks it.
    parameters: dict[bytes, dict[str, Any]]

    def run_id_of(self, path: str) -> str | None:
        if not (path.startswith(self.prefix) and path.endswith(self.suffix)):
            return None
        run_id = path[len(self.prefix) : len(path) - len(self.suffix)]
        return run_id if "/" not in run_id and self.run_id(run_id) else None


def follow_route_of(spec: dict[str, Any]) -> _FollowRoute | None:
    """The follow operation's route, if its parameters are the ones the lane knows
    (one path parameter, the integer query parameter ``after``, headers); else None."""
    for path, item in spec.get("paths", {}).items():
        op = item.get("get")
        if not isinstance(op, dict) or op.get("operationId") != _FOLLOW_OPERATION:
            continue
        prefix, _, rest = path.partition("{")
        name, _, suffix = rest.partition("}")
        run_id = after = None
        headers: dict[bytes, dict[str, Any]] = {}
        for parameter in op.get("parameters", []):
            parameter = _inlined(spec, _resolve(spec, parameter))
            where = parameter.get("in")
            if where == "path" and parameter["name"] == name:
                run_id = _param_check(parameter)
            elif where == "query" and parameter["name"] == "after" and parameter["schema"].get("type") == "integer":
                after = _param_check(parameter)
            elif where == "header":
                headers[parameter["name"].lower().encode("latin-1")] = parameter
            else:
                return None
        if run_id is None or after is None or "{" in suffix:
            return None
        return _FollowRoute(prefix, suffix, run_id, after, headers)
    return None


def _param_check(parameter: dict[str, Any]) -> Callable[[Any], bool]:
    schema = parameter["schema"]
    if _keywords(schema) & _DELICATE - {"pattern"}:
        raise ValueError(f"parameter {parameter['name']!r}: a schema the lane does not check")
    stdlib = JSONBodyValidator._compiled(schema)  # ``pattern`` as connexion reads it
    return lambda value: next(iter(stdlib.iter_errors(value)), None) is None


def _head(scope: Any, services: Any, parameters: dict[bytes, dict[str, Any]]) -> tuple[str, int, bytes | None] | None:
    """Of a request's head: the key's identity ("" for none or an unknown key), its
    Content-Length (-1: none) and normalized Content-Type; None for a head the lane
    leaves to connexion (a repeated key, length or header parameter, a length that is
    not digits, ``Transfer-Encoding``, a header parameter connexion's check refuses)."""
    identity = None
    length = -1
    content_type = None
    seen: set[bytes] = set()
    for name, value in scope["headers"]:
        if name == API_KEY_HEADER:
            if identity is not None:
                return None
            identity = services.keys.identify(value.decode("latin-1")) or ""
        elif name == b"content-length":
            if length >= 0 or not value.isdigit():
                return None
            length = int(value)
        elif name == b"content-type":
            content_type = normalize_content_type(value)
        elif name == b"transfer-encoding":
            return None
        elif name in parameters:
            if name in seen:
                return None
            seen.add(name)
            if ParamValidator.validate_parameter("header", value.decode("latin-1"), parameters[name]) is not None:
                return None
    return identity or "", length, content_type


async def _read(receive: Any, messages: list[dict[str, Any]], length: int) -> bytes | None:
    """The body (its Content-Length said ``length`` bytes), keeping each message read;
    None when what comes is not just that body."""
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None
        size += len(message.get("body", b""))
        if size > length:
            return None
        if not message.get("more_body", False):
            break
    if size != length:
        return None
    return b"".join(m.get("body", b"") for m in messages)


class _Replay:
    """``receive`` that first hands on the messages already read, then the rest."""

    __slots__ = ("_messages", "_receive")

    def __init__(self, messages: list[dict[str, Any]], receive: Any) -> None:
        self._messages = messages
        self._receive = receive

    async def __call__(self) -> dict[str, Any]:
        if self._messages:
            return self._messages.pop(0)
        message: dict[str, Any] = await self._receive()
        return message


class _Admission:
    """At most ``slots`` requests between their arrival in the lane and their run's
    creation; the others wait, in arrival order within each key and taking turns
    between keys, so one key's burst never stands in front of another key's request
    (see ``FastLaneMiddleware``)."""

    __slots__ = ("_free", "_queues")

    def __init__(self, slots: int) -> None:
        self._free = slots
        # Each waiting key's queue, in the order keys take their turns (dicts keep order).
        self._queues: dict[str, collections.deque[asyncio.Future[None]]] = {}

    async def enter(self, key: str) -> Callable[[], None]:
        """Waits for a slot; returns the function that gives it back (once)."""
        if self._free > 0 and not self._queues:
            self._free -= 1
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queues.setdefault(key, collections.deque()).append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._leave()  # given a slot as it was cancelled: pass it on
                else:
                    queue = self._queues.get(key)
                    if queue is not None and turn in queue:
                        queue.remove(turn)
                        if not queue:
                            del self._queues[key]
                raise
        left = False

        def leave() -> None:
            nonlocal left
            if not left:
                left = True
                self._leave()

        return leave

    def _leave(self) -> None:
        while self._queues:
            key, queue = next(iter(self._queues.items()))
            turn = queue.popleft()
            del self._queues[key]
            if queue:
                self._queues[key] = queue  # to the back of the line of keys
            if not turn.done():
                turn.set_result(None)  # the slot passes straight to the next in line
                return
        self._free += 1


class FastLaneMiddleware:
    """See the module docstring.

    Admission: at most ``ADMITTING`` requests are between their arrival here and their
    run's creation; the rest wait their turn (``_Admission``: arrival order within a
    key, keys taking turns), so a burst of one key's stream starts never stands in
    front of another key's request, and an early start's first event does not wait
    for the whole burst's. A place is held until the run is created, so starts go in
    waves of one group commit: 128 at once keeps a burst of 1,000 stream starts'
    time to its last first event within 0.75-1.5x of no admission (fewer places, more
    waves: 32 took ~2.5x); neither a body still arriving nor the run holds a place.
    """

    ADMITTING = 128

    def __init__(self, app: Any, spec: dict[str, Any], validate_responses: bool = False) -> None:
        self.app: Callable[[Any, Any, Any], Awaitable[None]] = app
        self.routes = routes_of(spec, validate_responses)
        try:
            self.follow = follow_route_of(spec)
        except (ValueError, TypeError, KeyError) as exc:
            log.info("%s: served without the fast lane (%s)", _FOLLOW_OPERATION, exc)
            self.follow = None
        self.admission = _Admission(self.ADMITTING)

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "POST" and not scope.get("query_string"):
                route = self.routes.get(get_route_path(scope))
                if route is not None:
                    return self._lane(scope, receive, send, route)
            elif method == "GET" and self.follow is not None:
                run_id = self.follow.run_id_of(get_route_path(scope))
                if run_id is not None:
                    return self._follow(scope, receive, send, self.follow, run_id)
        return self.app(scope, receive, send)  # no frame of its own (services.py, "Pass-through")

    async def _follow(self, scope: Any, receive: Any, send: Any, route: _FollowRoute, run_id: str) -> None:
        services = services_of(scope)
        admitted = self._admit_follow(scope, route, services)
        if admitted is None:
            await self.app(scope, receive, send)
            return
        identity, after = admitted
        refusal = await draw(scope, services, identity)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        mark_route(scope, _FOLLOW_OPERATION, identity)
        response = await run_events_for(Caller(services, identity, Headers(scope=scope), receive), run_id, after)
        await response(scope, receive, send)

    @staticmethod
    def _admit_follow(scope: Any, route: _FollowRoute, services: Any) -> tuple[str, int | None] | None:
        """The key's identity and ``after`` when the request is one the lane takes."""
        if b"%" in scope.get("raw_path", b""):
            return None  # an escaped path: connexion's routing decodes it its own way
        after = None
        query = scope.get("query_string")
        if query:
            match = _AFTER.fullmatch(query)
            if match is None or not route.after(after := int(match[1])):
                return None
        head = _head(scope, services, route.parameters)
        if head is None or not head[0] or head[1] > 0:
            return None  # no key, or a body on a GET: connexion's to answer
        return head[0], after

    async def _lane(self, scope: Any, receive: Any, send: Any, route: _Route) -> None:
        services = services_of(scope)
        admitted = self._admit(scope, route, services)
        if admitted is None:
            await self.app(scope, receive, send)
            return
        identity, length = admitted
        # The body, within its deadline (as BodyLimitMiddleware's); past it, connexion's
        # layers get what was read and answer the 408 themselves.
        messages: list[dict[str, Any]] = []
        if body_arrived(receive):
            raw = await _read(receive, messages, length)  # nothing to wait for: no timer
        else:
            start = scope.get("state", {}).get(HEAD_DONE_AT) or asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout_at(start + services.settings.body_timeout_s):
                    raw = await _read(receive, messages, length)
            except TimeoutError:
                raw = None
        if raw is None:
            await self.app(scope, _Replay(messages, receive), send)
            return
        # In turn from here to the run's creation: the body's parse and check, the rate
        # limit and the create are the start's work, done in arrival order (an early
        # request's first event does not wait for a whole burst's checks).
        leave = await self.admission.enter(identity)
        try:
            body = self._body(raw, route)
            if body is None:
                leave()
                await self.app(scope, _Replay(messages, receive), send)
                return
            refusal = await draw(scope, services, identity)
            if refusal is not None:
                leave()
                await refusal(scope, receive, send)
                return
            mark_route(scope, route.operation_id, identity)
            caller = Caller(services, identity, Headers(scope=scope), receive, leave)
            response = await route.handler(caller, route.skill_id, body)
        finally:
            leave()  # once: the handler gave it back when the run was created
        if route.answers:
            self._check_answer(route, response)
        await response(scope, receive, send)

    @staticmethod
    def _admit(scope: Any, route: _Route, services: Any) -> tuple[str, int] | None:
        """The key's identity and the body's length when the head is one the lane takes."""
        head = _head(scope, services, route.parameters)
        if head is None:
            return None
        identity, length, content_type = head
        if not identity or content_type not in _JSON_TYPES or not 0 < length <= services.settings.max_body_bytes:
            return None
        return identity, length

    @staticmethod
    def _body(raw: bytes, route: _Route) -> dict[str, Any] | None:
        if _SURROGATE_ESCAPE.search(raw):
            return None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict) or not route.is_valid(body):
            return None
        return body

    @staticmethod
    def _check_answer(route: _Route, response: Any) -> None:
        check = route.answers.get(response.status_code)
        if check is not None and not check(json.loads(response.body)):
            raise NonConformingResponseBody(f"{route.operation_id}: answer {response.status_code} breaks the spec")
