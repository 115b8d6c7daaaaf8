"""The fast lane (http/fastlane.py) answers what connexion would, and only what it can prove valid.

Every request below is sent twice, to an app with the lane and to one whose lane
passes everything on: the answers must be the same (status, media type, problem
body, the headers' names). Valid requests must not reach connexion's routing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from connexion.middleware.routing import RoutingMiddleware
from skillrun.http import fastlane
from skillrun.settings import DEFAULT_MAX_BODY_BYTES
from skillrun.http.app import create_app
from skillrun.http.handlers import execute as execute_handlers
from skillrun.http.handlers._http import json_response

from conftest import API_KEY, asgi_client, make_settings

pytestmark = pytest.mark.anyio

SUMMARIZE = "/v1/skills/text.summarize/execute"
TEXT = "Skills run steps. Steps emit events. Events stream to clients over HTTP."
# Answers that differ between two runs of the same request, whichever path served it.
_VARYING = {"x-run-id", "x-trace-id", "location", "date", "ratelimit-reset", "content-length"}


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths connexion's routing saw."""
    seen: list[str] = []
    real = RoutingMiddleware.__call__

    async def counting(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["path"])
        await real(self, scope, receive, send)

    monkeypatch.setattr(RoutingMiddleware, "__call__", counting)
    return seen


def _without_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    async def passing(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    monkeypatch.setattr(fastlane.FastLaneMiddleware, "__call__", passing)


async def test_valid_requests_take_the_lane(routed: list[str]) -> None:
    async with asgi_client(create_app(make_settings())) as client:
        body = {"inputs": {"text": TEXT, "max_sentences": 1}}
        plain = await client.post(SUMMARIZE, json=body)
        assert plain.status_code == 200 and plain.json()["status"] == "completed"
        assert plain.headers["ratelimit-limit"] == "100000" and plain.headers["x-run-id"].startswith("run_")
        traced = await client.post(
            SUMMARIZE, json=body,
            headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Idempotency-Key": "k-1"},
        )
        assert traced.headers["x-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        again = await client.post(SUMMARIZE, json=body, headers={"Idempotency-Key": "k-1"})
        assert again.headers["idempotent-replayed"] == "true" and again.headers["x-run-id"] == traced.headers["x-run-id"]
        stream = await client.post("/v1/skills/demo.ticker/execute/stream", json={"inputs": {"steps": 2}})
        assert stream.status_code == 200 and stream.text.rstrip().endswith("}")
        assert [line for line in stream.text.splitlines() if line.startswith("event:")][-1] == "event: done"
        queued = await client.post("/v1/skills/demo.ticker/execute/async", json={"inputs": {"steps": 1}})
        assert queued.status_code == 202 and queued.headers["location"].startswith("/v1/runs/run_")
        # The run it started is the caller's, as connexion's security check would have said.
        got = await client.get(queued.headers["location"])
        assert got.status_code == 200
    assert not [p for p in routed if "/execute" in p], routed
    assert queued.headers["location"] in routed  # other operations still go through connexion


# (method, path, body bytes or JSON, headers): each breaks one thing the lane checks.
CASES: list[tuple[str, Any, dict[str, str]]] = [
    (SUMMARIZE, {"inputs": {"text": TEXT}}, {}),
    (SUMMARIZE, {"inputs": {"text": ""}}, {}),  # 422: minLength
    (SUMMARIZE, {"inputs": {"text": TEXT, "max_sentences": 1.0}}, {}),  # 422: not an integer (draft 4)
    (SUMMARIZE, {"inputs": {"text": TEXT}, "options": {"timeout_ms": 0}}, {}),  # 422 in a $ref'd schema
    (SUMMARIZE, {"inputs": {"text": TEXT}, "extra": 1}, {}),  # 422: unknown field
    (SUMMARIZE, {"inputs": {"text": TEXT}}, {"x-api-key": ""}),  # 401: no key
    (SUMMARIZE, {"inputs": {"text": TEXT}}, {"x-api-key": "wrong"}),  # 401
    (SUMMARIZE, b'{"inputs": {"text": "x"', {}),  # 400: not JSON
    (SUMMARIZE, b'{"inputs": {"text": "x", "max_sentences": NaN}}', {}),  # 400: not JSON
    (SUMMARIZE, b'{"inputs": {"text": "\\ud800"}}', {}),  # 422: lone surrogate
    (SUMMARIZE, b'[1, 2]', {}),  # 422: not an object
    (SUMMARIZE, b"null", {}),  # 422
    (SUMMARIZE, json.dumps({"inputs": {"text": TEXT}}).encode(), {"content-type": "text/plain"}),  # 415
    (SUMMARIZE, json.dumps({"inputs": {"text": TEXT}}).encode(), {"content-type": "APPLICATION/JSON"}),
    (SUMMARIZE + "?x=1", {"inputs": {"text": TEXT}}, {}),  # 400: unknown query parameter
    ("/v1/skills/no.such/execute", {"inputs": {}}, {}),  # 404
    (SUMMARIZE, {"inputs": {"text": TEXT}}, {"x-trace-id": "not a trace id!"}),  # 400: pattern
    (SUMMARIZE, {"inputs": {"text": TEXT}}, {"x-trace-id": "trace-abc-123"}),
    (SUMMARIZE, {"inputs": {"text": TEXT}}, {"Idempotency-Key": "x" * 300}),  # 400: too long
    (SUMMARIZE, {"inputs": {"text": "x" * (DEFAULT_MAX_BODY_BYTES + 1)}}, {}),  # 413
    ("/v1/skills/demo.ticker/execute/async", {"inputs": {"steps": 1}}, {}),  # 202
    ("/v1/skills/demo.ticker/execute", {"inputs": {"steps": 0}}, {}),  # 422
    ("/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": 10001}}, {}),  # 422
    ("/v1/skills/demo.ticker/execute/async", {"inputs": {"steps": 1}, "options": {"on_disconnect": "x"}}, {}),
]


def _stable(value: Any) -> Any:
    """``value`` without what differs from run to run (ids, times)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in ("run_id", "trace_id", "duration_ms", "created_at",
                                                                    "started_at", "finished_at")}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


async def _answers(cases: list[tuple[str, Any, dict[str, str]]]) -> list[tuple[Any, ...]]:
    answers = []
    async with asgi_client(create_app(make_settings())) as client:
        for path, body, headers in cases:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent = {"content-type": "application/json", **headers}
            if sent.get("x-api-key") == "":
                client.headers.pop("x-api-key", None)
                sent.pop("x-api-key")
            response = await client.post(path, content=content, headers=sent)
            client.headers["x-api-key"] = API_KEY
            kind = response.headers.get("content-type", "")
            shown = response.json() if "json" in kind else None
            shown = _stable(shown)
            names = sorted(n for n in response.headers if n not in _VARYING)
            answers.append((path, response.status_code, kind, shown, names))
    return answers


async def test_every_answer_is_connexions(monkeypatch: pytest.MonkeyPatch) -> None:
    with_lane = await _answers(CASES)
    _without_lane(monkeypatch)
    without = await _answers(CASES)
    for got, expected in zip(with_lane, without):
        assert got == expected
    statuses = [a[1] for a in with_lane]
    assert {400, 401, 404, 413, 415, 422, 200, 202} <= set(statuses), statuses


# (query, headers) of a follow of a finished 3-step run (9 events): each as connexion answers it.
FOLLOWS: list[tuple[str, dict[str, str]]] = [
    ("", {}),
    ("?after=2", {}),
    ("?after=00002", {}),
    ("", {"Last-Event-ID": "3"}),
    ("?after=1", {"Last-Event-ID": "5"}),  # the header wins
    ("?after=9", {}),  # its done: an empty stream
    ("?after=10", {}),  # 409: past the end
    ("", {"Last-Event-ID": "99"}),  # 409, naming the header
    ("", {"Last-Event-ID": "abc"}),  # 400: pattern
    ("?after=-1", {}),  # 400: minimum
    ("?after=x", {}),  # 400: not an integer
    ("?after=1&x=2", {}),  # 400: unknown query parameter
    ("?after=1000000000000000000", {}),  # 400: maximum
    ("", {"x-api-key": "wrong"}),  # 401
    ("", {"x-api-key": ""}),  # 401
]


async def _follows(client: Any, path: str) -> list[tuple[Any, ...]]:
    answers = []
    for query, headers in FOLLOWS:
        sent = dict(headers)
        if sent.get("x-api-key") == "":
            client.headers.pop("x-api-key", None)
            sent.pop("x-api-key")
        response = await client.get(path + query, headers=sent)
        client.headers["x-api-key"] = API_KEY
        kind = response.headers.get("content-type", "")
        if "event-stream" in kind:
            shown: Any = [line for line in response.text.splitlines() if line.startswith(("id:", "event:"))]
        else:
            shown = _stable(response.json()) if "json" in kind else None
        names = sorted(n for n in response.headers if n not in _VARYING)
        answers.append((query, headers, response.status_code, kind, shown, names))
    return answers


async def test_a_follow_takes_the_lane_and_is_answered_as_connexion_answers_it(
    routed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with asgi_client(create_app(make_settings())) as client:
        done = await client.post("/v1/skills/demo.ticker/execute", json={"inputs": {"steps": 3}})
        path = f"/v1/runs/{done.headers['x-run-id']}/events"
        other = await client.get("/v1/runs/run_nobodys/events")
        bad_id = await client.get("/v1/runs/not!an!id/events")
        with_lane = await _follows(client, path)
        to_connexion = [p for p in routed if p.endswith("/events")]
        _without_lane(monkeypatch)
        without = await _follows(client, path)
        assert (await client.get("/v1/runs/run_nobodys/events")).json() == other.json()
        assert (await client.get("/v1/runs/not!an!id/events")).json() == bad_id.json()
    for got, expected in zip(with_lane, without):
        assert got == expected
    assert [a[2] for a in with_lane] == [200] * 6 + [409, 409] + [400] * 5 + [401, 401]
    assert with_lane[0][4][-1] == "event: done" and with_lane[1][4][0] == "id: 3" and with_lane[5][4] == []
    assert other.status_code == 404 and bad_id.status_code == 400
    # The valid follows, the 409s and the 404 (the handler's own answers) took the lane;
    # the bad run id, the 5 bad parameters and the 2 bad keys went to connexion.
    assert len(to_connexion) == 1 + 5 + 2, to_connexion


@pytest.mark.parametrize("lane", [True, False])
async def test_one_rate_limit_hit_per_request(lane: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid and invalid requests draw once each on one budget, whichever path serves them."""
    if not lane:
        _without_lane(monkeypatch)
    async with asgi_client(create_app(make_settings(rate_limit="3/minute"))) as client:
        valid = {"inputs": {"text": TEXT}}
        first = await client.post(SUMMARIZE, json=valid)
        bad = await client.post(SUMMARIZE, json={"inputs": {}})
        second = await client.post(SUMMARIZE, json=valid)
        limited = await client.post(SUMMARIZE, json=valid)
    assert [first.status_code, bad.status_code, second.status_code, limited.status_code] == [200, 422, 200, 429]
    assert second.headers["ratelimit-remaining"] == "0"
    assert limited.json()["detail"].startswith("Rate limit of 3 requests exceeded")
    assert int(limited.headers["retry-after"]) >= 1


async def test_a_body_past_its_deadline_gets_connexions_408() -> None:
    """The lane reads the body within the same deadline; past it, the validation
    layer gets what came and answers the 408."""
    app = create_app(make_settings(body_timeout_s=0.2))
    sent: list[dict[str, Any]] = []
    body = json.dumps({"inputs": {"text": TEXT}}).encode()
    messages = [{"type": "http.request", "body": body[:10], "more_body": True}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(5)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": SUMMARIZE, "raw_path": SUMMARIZE.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"t"), (b"x-api-key", API_KEY.encode()), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["detail"] == "The body did not arrive within 0.2 s."


async def test_answers_are_checked_against_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    """With response validation on (the tests), a lane's answer that breaks the spec is a 500, as connexion's."""

    async def bogus(caller: Any, skill_id: str, body: dict[str, Any]) -> Any:
        return json_response({"not": "a result"})

    monkeypatch.setitem(execute_handlers.BY_OPERATION, "execute", bogus)
    async with asgi_client(create_app(make_settings())) as client:
        response = await client.post(SUMMARIZE, json={"inputs": {"text": TEXT}})
    assert response.status_code == 500


async def test_admission_takes_keys_in_turn_and_each_key_in_order() -> None:
    """With every place taken, key A's burst of 5 and then key B's 2 requests wait: as
    places come back, the keys take turns (A, B, A, B, A ...), each key in arrival
    order; a waiter that gives up (its client left) holds no place."""
    admission = fastlane._Admission(2)
    held = [await admission.enter("a"), await admission.enter("a")]
    order: list[str] = []

    async def wait(name: str, key: str) -> None:
        leave = await admission.enter(key)
        order.append(name)
        held.append(leave)

    waiters = [asyncio.create_task(wait(f"a{i}", "a")) for i in range(5)]
    waiters += [asyncio.create_task(wait(f"b{i}", "b")) for i in range(2)]
    quitter = asyncio.create_task(wait("c0", "c"))
    await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.sleep(0)
    for served in range(1, 8):
        leave = held.pop(0)
        leave()  # a place comes back: the next in turn takes it
        leave()  # giving back twice is once
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(order) == served, order
    await asyncio.gather(*waiters)
    assert order == ["a0", "b0", "a1", "b1", "a2", "a3", "a4"]
    assert quitter.cancelled() and "c0" not in order


async def test_the_lane_starts_runs_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lane request waits for an admission place before its body is checked and its
    run created, and gives the place back exactly once, whether it started a run, was
    refused by the rate limit, or was handed to connexion with a body the lane refused."""
    lanes: list[fastlane.FastLaneMiddleware] = []
    real_init = fastlane.FastLaneMiddleware.__init__

    def init(self: fastlane.FastLaneMiddleware, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        lanes.append(self)

    monkeypatch.setattr(fastlane.FastLaneMiddleware, "__init__", init)
    monkeypatch.setattr(fastlane.FastLaneMiddleware, "ADMITTING", 0)  # every place taken
    # Four requests a minute: two lists, a start, a bad body; the fifth is refused.
    async with asgi_client(create_app(make_settings(rate_limit="4/minute"))) as client:
        assert (await client.get("/v1/runs")).json()["runs"] == []  # (connexion builds its stack lazily)
        (lane,) = lanes
        queued = asyncio.create_task(
            client.post("/v1/skills/demo.ticker/execute/async", json={"inputs": {"steps": 1}}))
        for _ in range(500):
            if lane.admission._queues:
                break
            await asyncio.sleep(0.01)
        assert lane.admission._queues and not queued.done()
        listed = await client.get("/v1/runs")  # not a start: never waits for a place
        assert listed.status_code == 200 and listed.json()["runs"] == []
        lane.admission._leave()  # a place comes back: the waiting start takes it
        started = await asyncio.wait_for(queued, 10)
        assert started.status_code == 202
        assert lane.admission._free == 1 and not lane.admission._queues  # given back once
        bad = await client.post("/v1/skills/demo.ticker/execute/async", json={"inputs": {"steps": 0}})
        assert bad.status_code == 422 and lane.admission._free == 1
        limited = await client.post("/v1/skills/demo.ticker/execute/async", json={"inputs": {"steps": 1}})
        assert limited.status_code == 429 and lane.admission._free == 1


def test_an_operation_the_lane_cannot_take_is_left_to_connexion() -> None:
    """A skill input schema nested deeper than any limit of the lane's, or a $ref cycle,
    never stops the server: that operation is simply served by connexion."""
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):  # 80 levels of dicts: past a nesting bound the lane once had
        deep = {"type": "object", "properties": {"a": deep}}
    spec = {
        "components": {"schemas": {"Loop": {"$ref": "#/components/schemas/Loop"}}},
        "paths": {
            "/v1/skills/deep/execute": {"post": {
                "operationId": "execute__deep", fastlane.SKILL_KEY: "deep",
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "properties": {"inputs": deep}}}}},
            }},
            "/v1/skills/loop/execute": {"post": {
                "operationId": "execute__loop", fastlane.SKILL_KEY: "loop",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Loop"}}}},
            }},
        },
    }
    table = fastlane.routes_of(spec, validate_responses=False)
    assert "/v1/skills/loop/execute" not in table
    assert table["/v1/skills/deep/execute"].is_valid({"inputs": {"a": {"a": {}}}})  # deep but fine
