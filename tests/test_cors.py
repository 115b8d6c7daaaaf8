"""CORS: a page on an allowed origin can call the API, read errors and run headers."""

from __future__ import annotations

from typing import Any, Callable

import httpx
import pytest

from conftest import API_KEY

pytestmark = pytest.mark.anyio

PAGE = "http://page.example:5173"
STREAM = "/v1/skills/demo.ticker/execute/stream"
WANTED_HEADERS = ["x-api-key", "x-trace-id", "last-event-id", "idempotency-key", "content-type"]
EXPOSED = ["x-run-id", "x-trace-id", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after"]


def preflight(origin: str = PAGE, method: str = "POST", headers: str | None = None) -> dict[str, str]:
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    h["Access-Control-Request-Headers"] = headers if headers is not None else ",".join(WANTED_HEADERS)
    return h


def client_for(app: Any) -> httpx.AsyncClient:
    # No x-api-key preset: browsers never send it on a preflight.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_preflight_from_allowed_origin_is_answered_without_a_key(app_factory: Callable[..., Any]) -> None:
    async with client_for(app_factory(cors_origins=[PAGE])) as c:
        for path in (STREAM, "/v1/skills/text.summarize/execute", "/v1/skills", "/v1/runs/run_x/events"):
            r = await c.options(path, headers=preflight())
            assert r.status_code == 200, (path, r.text)
            assert r.headers["access-control-allow-origin"] == PAGE
            allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
            assert set(WANTED_HEADERS) <= allowed
            assert {"GET", "POST"} <= {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
            assert int(r.headers["access-control-max-age"]) > 0


def assert_refused(r: httpx.Response) -> str:
    """A refused preflight (Fetch standard): a 2xx with no Access-Control-Allow-* header,
    so the browser's CORS check fails; the text says why. Returns that text."""
    assert r.status_code == 200, r.text
    assert not [h for h in r.headers if h.lower().startswith("access-control-allow-")], r.headers
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


async def test_preflight_from_other_origin_is_refused_naming_the_origin(app_factory: Callable[..., Any]) -> None:
    async with client_for(app_factory(cors_origins=[PAGE])) as c:
        r = await c.options(STREAM, headers=preflight(origin="http://evil.example"))
    assert "http://evil.example" in assert_refused(r)


async def test_preflight_with_an_empty_origin_is_refused_with_a_2xx(app_factory: Callable[..., Any]) -> None:
    """Issue 13: `OPTIONS /v1/runs` with `Origin;` (empty) answered 400, which schemathesis
    (rightly: the header is a valid string) flags; refusals are 2xx without allow headers."""
    async with client_for(app_factory(cors_origins=[PAGE])) as c:
        r = await c.options("/v1/runs", headers=preflight(origin=""))
    assert "Origin" in assert_refused(r)


async def test_preflight_asking_for_an_unknown_header_names_it(app_factory: Callable[..., Any]) -> None:
    async with client_for(app_factory(cors_origins=[PAGE])) as c:
        r = await c.options(STREAM, headers=preflight(headers="x-api-key, x-secret-thing"))
    detail = assert_refused(r)
    assert "x-secret-thing" in detail
    assert "x-api-key" not in detail.split("Headers", 1)[1]


async def test_preflight_asking_for_an_unknown_method_names_it(app_factory: Callable[..., Any]) -> None:
    async with client_for(app_factory(cors_origins=[PAGE])) as c:
        # DELETE is allowed now (DELETE /v1/runs/{run_id}); PUT is no method of this API.
        r = await c.options(STREAM, headers=preflight(method="PUT"))
    assert "PUT" in assert_refused(r)


async def test_no_origin_is_allowed_by_default(app_factory: Callable[..., Any]) -> None:
    async with client_for(app_factory()) as c:
        r = await c.options(STREAM, headers=preflight())
        assert PAGE in assert_refused(r)
        simple = await c.get("/v1/skills", headers={"Origin": PAGE, "x-api-key": API_KEY})
        assert simple.status_code == 200
        assert "access-control-allow-origin" not in simple.headers


async def test_star_allows_any_origin(app_factory: Callable[..., Any]) -> None:
    async with client_for(app_factory(cors_origins=["*"])) as c:
        r = await c.options(STREAM, headers=preflight(origin="http://anything.example"))
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"


async def test_options_without_preflight_headers_gets_204(app_factory: Callable[..., Any]) -> None:
    async with client_for(app_factory(cors_origins=[PAGE])) as c:
        r = await c.options(STREAM)
    assert r.status_code == 204
    assert "access-control-allow-origin" not in r.headers


async def test_answers_expose_run_and_rate_limit_headers(app_factory: Callable[..., Any]) -> None:
    async with client_for(app_factory(cors_origins=[PAGE])) as c:
        r = await c.post(
            "/v1/skills/text.summarize/execute",
            json={"inputs": {"text": "One. Two."}},
            headers={"Origin": PAGE, "x-api-key": API_KEY},
        )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == PAGE
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert set(EXPOSED) <= exposed
    assert r.headers["x-run-id"] == r.json()["run_id"]


async def test_problems_carry_cors_headers_so_pages_can_read_them(app_factory: Callable[..., Any]) -> None:
    async with client_for(app_factory(cors_origins=[PAGE], rate_limit="1/minute")) as c:
        unauthorized = await c.get("/v1/skills", headers={"Origin": PAGE})
        assert unauthorized.status_code == 401
        assert unauthorized.headers["access-control-allow-origin"] == PAGE
        headers = {"Origin": PAGE, "x-api-key": API_KEY}
        await c.get("/v1/skills", headers=headers)
        limited = await c.get("/v1/skills", headers=headers)
        assert limited.status_code == 429
        assert limited.headers["access-control-allow-origin"] == PAGE
        assert "retry-after" in limited.headers["access-control-expose-headers"].lower()
        unprocessable = await c.post(STREAM, json={"inputs": {"steps": 0}}, headers=headers)
        assert unprocessable.status_code in (422, 429)
        assert unprocessable.headers["access-control-allow-origin"] == PAGE


def test_stream_from_real_server_carries_cors_headers(server_factory: Callable[..., Any]) -> None:
    server = server_factory(env={"SKILLRUN_CORS_ORIGINS": f"http://other.example, {PAGE}"})
    with httpx.stream(
        "POST",
        server.url + STREAM,
        json={"inputs": {"steps": 2}},
        headers={"Origin": PAGE, "x-api-key": API_KEY},
        timeout=10,
    ) as r:
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == PAGE
        assert "x-run-id" in r.headers["access-control-expose-headers"].lower()
        body = r.read().decode()
    assert "event: done" in body


@pytest.mark.parametrize("answer_headers", [
    [(b"content-type", b"application/json")],
    [(b"vary", b"Accept-Encoding"), (b"content-type", b"text/plain"), (b"vary", b"Cookie")],
    [(b"content-type", b"text/event-stream"), (b"vary", b"Accept")],
    [],
])
async def test_an_answer_to_a_request_without_origin_gets_the_head_starlettes_cors_gives_it(
    answer_headers: list[tuple[bytes, bytes]],
) -> None:
    """Without an ``Origin`` our middleware skips Starlette's header classes; the head it
    sends is byte for byte Starlette's (``Vary: Origin`` joined with any ``Vary``)."""
    from starlette.middleware.cors import CORSMiddleware

    from skillrun.http.middleware.cors import CorsMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(answer_headers)})
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})

    heads = []
    for middleware in (CorsMiddleware(app, origins=[PAGE]), CORSMiddleware(app, allow_origins=[PAGE])):
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"host", b"x"), (b"x-api-key", b"k")]}
        await middleware(scope, None, send)
        assert sent[1] == {"type": "http.response.body", "body": b"ok", "more_body": False}
        heads.append(sent[0])
    assert heads[0] == heads[1]
    assert any(name == b"vary" and value.endswith(b"Origin") for name, value in heads[0]["headers"])
