"""Every client mistake is a clear problem+json status, the same on ``/execute`` and the stream.

The stream answers these before its first byte: the response is the problem
document, never a ``text/event-stream`` that starts and then breaks.
Chunked bodies (no Content-Length) need a real server: ``ASGITransport`` is not
where framing is decided.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import httpx
import pytest

from conftest import API_KEY, Server
from skillrun.settings import DEFAULT_MAX_BODY_BYTES

ENDPOINTS = ["/execute", "/execute/stream"]
SUMMARIZE = "/v1/skills/text.summarize"
JSON = {"content-type": "application/json"}


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """A problem+json answer with this status and nothing of a stream in it."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = json.loads(r.content)  # the whole body is the problem: no SSE frame came first
    assert body["status"] == status
    assert body["title"] and isinstance(body["detail"], str) and body["detail"]
    assert "event:" not in r.text and "id:" not in r.text.split("{", 1)[0]
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body["errors"]]



@pytest.fixture
def client(shared_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return shared_client


@pytest.fixture(params=ENDPOINTS, ids=["execute", "stream"])
def endpoint(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- 400 ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "raw",
    [b'{"inputs":', b"not json", b'{"inputs": {"text": NaN}}', b"[1, 2"],
    ids=["truncated", "text", "nan", "open-array"],
)
async def test_malformed_json_is_400(client: httpx.AsyncClient, endpoint: str, raw: bytes) -> None:
    r = await client.post(SUMMARIZE + endpoint, content=raw, headers=JSON)
    body = assert_problem(r, 400)
    assert "JSON" in body["detail"]


@pytest.mark.anyio
async def test_non_utf8_body_is_400_not_500(client: httpx.AsyncClient, endpoint: str) -> None:
    r = await client.post(SUMMARIZE + endpoint, content=b'{"inputs": {"text": "caf\xe9"}}', headers=JSON)
    body = assert_problem(r, 400)
    assert "UTF-8" in body["detail"]


@pytest.mark.anyio
@pytest.mark.parametrize("headers", [JSON, {}], ids=["json", "no-content-type"])
async def test_empty_body_is_400(client: httpx.AsyncClient, endpoint: str, headers: dict[str, str]) -> None:
    r = await client.post(SUMMARIZE + endpoint, content=b"", headers=headers)
    body = assert_problem(r, 400)
    assert "empty" in body["detail"]


@pytest.mark.anyio
@pytest.mark.parametrize("raw", [b"null", b"[]", b'"text"', b"42"])
async def test_json_that_is_not_an_object_is_422(client: httpx.AsyncClient, endpoint: str, raw: bytes) -> None:
    r = await client.post(SUMMARIZE + endpoint, content=raw, headers=JSON)
    problem = assert_problem(r, 422)
    assert fields(problem) == ["(body)"]


@pytest.mark.anyio
@pytest.mark.parametrize("trace", ["has space", "x" * 129, "semi;colon"], ids=["space", "too-long", "semicolon"])
async def test_bad_trace_id_header_is_400_naming_it(client: httpx.AsyncClient, endpoint: str, trace: str) -> None:
    r = await client.post(SUMMARIZE + endpoint, json={"inputs": {"text": "Hi."}}, headers={"x-trace-id": trace})
    body = assert_problem(r, 400)
    assert body["detail"].startswith("header parameter 'x-trace-id': "), body["detail"]
    assert "Failed validating" not in body["detail"]  # one line, not a jsonschema dump


@pytest.mark.anyio
async def test_trace_id_with_every_allowed_character_is_echoed(client: httpx.AsyncClient, endpoint: str) -> None:
    trace = "Ab9._:-" + "z" * 121  # 128 characters, the longest allowed
    r = await client.post(SUMMARIZE + endpoint, json={"inputs": {"text": "Hi."}}, headers={"x-trace-id": trace})
    assert r.status_code == 200, r.text
    assert r.headers["x-trace-id"] == trace


@pytest.mark.anyio
async def test_deeply_nested_body_is_400_not_500(client: httpx.AsyncClient, endpoint: str) -> None:
    """Regression: json.loads' RecursionError escaped as a 500."""
    raw = b'{"inputs": {"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    body = assert_problem(await client.post(SUMMARIZE + endpoint, content=raw, headers=JSON), 400)
    assert "nested too deeply" in body["detail"]


@pytest.mark.anyio
async def test_lone_surrogate_is_422_naming_the_field(client: httpx.AsyncClient, endpoint: str) -> None:
    """Regression: "\\ud800" is valid JSON but not text; the run failed deep in CEL."""
    raw = b'{"inputs": {"text": "Hi \\ud800 there.", "max_sentences": 1}}'
    problem = assert_problem(await client.post(SUMMARIZE + endpoint, content=raw, headers=JSON), 422)
    assert fields(problem) == ["inputs.text"]
    assert "surrogate" in problem["errors"][0]["message"]


@pytest.mark.anyio
async def test_escaped_surrogate_pair_is_text(client: httpx.AsyncClient, endpoint: str) -> None:
    raw = b'{"inputs": {"text": "Smile \\ud83d\\ude00 please. Thanks."}}'
    r = await client.post(SUMMARIZE + endpoint, content=raw, headers=JSON)
    assert r.status_code == 200, r.text
    assert "\U0001F600" in r.text


# -- 401 ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("key", [None, "wrong-key", API_KEY + "x", ""], ids=["missing", "wrong", "longer", "empty"])
async def test_missing_or_wrong_key_is_401(client: httpx.AsyncClient, endpoint: str, key: str | None) -> None:
    headers = {**JSON}
    if key is not None:
        headers["x-api-key"] = key
    client.headers.pop("x-api-key", None)
    r = await client.post(SUMMARIZE + endpoint, json={"inputs": {"text": "Hello."}}, headers=headers)
    assert_problem(r, 401)


@pytest.mark.anyio
async def test_401_comes_before_body_checks(client: httpx.AsyncClient, endpoint: str) -> None:
    # A request without a key learns nothing about the body, the skill or the limits.
    client.headers.pop("x-api-key", None)
    r = await client.post("/v1/skills/nope" + endpoint, content=b"\xff{", headers={"content-type": "text/plain"})
    assert_problem(r, 401)


# -- 404 ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_unknown_skill_is_404(client: httpx.AsyncClient, endpoint: str) -> None:
    r = await client.post("/v1/skills/no.such.skill" + endpoint, json={"inputs": {"text": "x"}})
    body = assert_problem(r, 404)
    assert "no.such.skill" in body["detail"]


# -- 413 ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_body_over_limit_with_content_length_is_413(app_factory: Any, endpoint: str) -> None:
    app = app_factory(max_body_bytes=200)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        body = {"inputs": {"text": "a" * 300}}
        r = await c.post(SUMMARIZE + endpoint, json=body, headers={"x-api-key": API_KEY})
        assert_problem(r, 413)
        # Just under the limit is fine: the limit is the configured one, not a fixed size.
        ok = await c.post(SUMMARIZE + endpoint, json={"inputs": {"text": "a" * 100}}, headers={"x-api-key": API_KEY})
        assert ok.status_code == 200, ok.text


@pytest.mark.anyio
async def test_body_limit_boundary_is_inclusive(app_factory: Any, endpoint: str) -> None:
    """A body of exactly the limit is accepted; one byte more is 413."""
    app = app_factory(max_body_bytes=300)
    prefix, suffix = b'{"inputs": {"text": "', b'"}}'
    exact = prefix + b"a" * (300 - len(prefix) - len(suffix)) + suffix
    assert len(exact) == 300
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        headers = {**JSON, "x-api-key": API_KEY}
        ok = await c.post(SUMMARIZE + endpoint, content=exact, headers=headers)
        assert ok.status_code == 200, ok.text
        over = exact[:-3] + b'a"}}'
        assert_problem(await c.post(SUMMARIZE + endpoint, content=over, headers=headers), 413)


@pytest.mark.anyio
async def test_only_operations_that_take_a_body_answer_413(app_factory: Any, endpoint: str) -> None:
    """The async endpoint too; an operation without a requestBody never reads one, so a
    large body there gets that operation's usual (documented) answer, never an
    undocumented 413."""
    app = app_factory(max_body_bytes=100)
    big = b'{"inputs": {"text": "' + b"a" * 200 + b'"}}'
    headers = {**JSON, "x-api-key": API_KEY}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert_problem(await c.post(SUMMARIZE + "/execute/async", content=big, headers=headers), 413)
        assert (await c.request("GET", "/v1/skills", content=big, headers=headers)).status_code == 200
        assert (await c.request("GET", "/v1/health/live", content=big, headers=JSON)).status_code == 200
        assert_problem(await c.post("/v1/runs/run_nope/cancel", content=big, headers=headers), 404)


def _chunks(data: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_default_limit_is_eight_mib_with_content_length(server: Server, endpoint: str) -> None:
    body = json.dumps({"inputs": {"text": "a" * DEFAULT_MAX_BODY_BYTES}}).encode()
    r = httpx.post(server.url + SUMMARIZE + endpoint, content=body, headers={**JSON, "x-api-key": API_KEY}, timeout=10)
    assert_problem(r, 413)


def test_chunked_body_over_limit_is_413(server: Server, endpoint: str) -> None:
    """No Content-Length to refuse up front: the body is counted as it arrives."""
    body = json.dumps({"inputs": {"text": "a" * (DEFAULT_MAX_BODY_BYTES + 10)}}).encode()
    r = httpx.post(
        server.url + SUMMARIZE + endpoint,
        content=_chunks(body),  # a generator: httpx sends Transfer-Encoding: chunked
        headers={**JSON, "x-api-key": API_KEY},
        timeout=10,
    )
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in r.request.headers
    assert_problem(r, 413)


def test_chunked_body_under_limit_is_accepted(server: Server, endpoint: str) -> None:
    """Regression: connexion took a body without Content-Length for no body (400)."""
    body = json.dumps({"inputs": {"text": "Chunks arrive. They are read whole."}}).encode()
    r = httpx.post(
        server.url + SUMMARIZE + endpoint,
        content=_chunks(body, 7),
        headers={**JSON, "x-api-key": API_KEY},
        timeout=10,
    )
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 200, r.text
    assert '"status":"completed"' in r.text


# -- 415 ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_non_json_content_type_is_415(client: httpx.AsyncClient, endpoint: str, ctype: str) -> None:
    r = await client.post(SUMMARIZE + endpoint, content=b'{"inputs": {"text": "Hi."}}', headers={"content-type": ctype})
    assert_problem(r, 415)


@pytest.mark.anyio
async def test_missing_content_type_is_415_not_500(client: httpx.AsyncClient, endpoint: str) -> None:
    """Regression: connexion guessed JSON, handed the handler raw bytes, and answered 500."""
    r = await client.post(SUMMARIZE + endpoint, content=b'{"inputs": {"text": "Hi."}}')
    assert "content-type" not in r.request.headers
    body = assert_problem(r, 415)
    assert "Content-Type" in body["detail"]


@pytest.mark.anyio
async def test_json_with_charset_is_accepted(client: httpx.AsyncClient, endpoint: str) -> None:
    r = await client.post(
        SUMMARIZE + endpoint,
        content=b'{"inputs": {"text": "Hi there."}}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200, r.text


# -- 422 ------------------------------------------------------------------------

INVALID = [
    ("missing-required", SUMMARIZE, {"inputs": {}}, "inputs.text"),
    ("missing-inputs", SUMMARIZE, {"options": {}}, "inputs"),
    ("inputs-not-object", SUMMARIZE, {"inputs": "text"}, "inputs"),
    ("wrong-type", SUMMARIZE, {"inputs": {"text": "Hi.", "max_sentences": "two"}}, "inputs.max_sentences"),
    ("wrong-type-text", SUMMARIZE, {"inputs": {"text": 42}}, "inputs.text"),
    ("below-range", SUMMARIZE, {"inputs": {"text": "Hi.", "max_sentences": 0}}, "inputs.max_sentences"),
    ("above-range", SUMMARIZE, {"inputs": {"text": "Hi.", "max_sentences": 21}}, "inputs.max_sentences"),
    ("empty-text", SUMMARIZE, {"inputs": {"text": ""}}, "inputs.text"),
    ("unknown-input", SUMMARIZE, {"inputs": {"text": "Hi.", "colour": "red"}}, "inputs.colour"),
    ("unknown-option", SUMMARIZE, {"inputs": {"text": "Hi."}, "options": {"turbo": True}}, "options.turbo"),
    ("option-range", SUMMARIZE, {"inputs": {"text": "Hi."}, "options": {"timeout_ms": 0}}, "options.timeout_ms"),
    ("option-type", SUMMARIZE, {"inputs": {"text": "Hi."}, "options": {"timeout_ms": "1s"}}, "options.timeout_ms"),
    ("unknown-top-level", SUMMARIZE, {"inputs": {"text": "Hi."}, "extra": 1}, "extra"),
    ("ticker-range", "/v1/skills/demo.ticker", {"inputs": {"steps": 10001}}, "inputs.steps"),
    ("ticker-delay", "/v1/skills/demo.ticker", {"inputs": {"delay_ms": -1}}, "inputs.delay_ms"),
    ("showcase-bool", "/v1/skills/demo.showcase", {"inputs": {"text": "x", "detailed": "yes"}}, "inputs.detailed"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("path,body,field", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
async def test_invalid_inputs_are_422_naming_the_field(
    client: httpx.AsyncClient, endpoint: str, path: str, body: Any, field: str
) -> None:
    r = await client.post(path + endpoint, json=body)
    problem = assert_problem(r, 422)
    assert field in fields(problem), problem
    assert all(e["message"] for e in problem["errors"])
    assert field in problem["detail"]


@pytest.mark.anyio
async def test_422_names_every_failing_field(client: httpx.AsyncClient, endpoint: str) -> None:
    r = await client.post(SUMMARIZE + endpoint, json={"inputs": {"max_sentences": 99}, "options": {"x": 1}})
    problem = assert_problem(r, 422)
    assert {"inputs.text", "inputs.max_sentences", "options.x"} <= set(fields(problem))


# -- the stream starts only for a valid request -----------------------------------


def test_stream_errors_on_real_server_come_before_any_event(server: Server) -> None:
    """Against uvicorn: each bad request is answered whole as a problem, no stream begins."""
    url = server.url + SUMMARIZE + "/execute/stream"
    cases: list[tuple[int, dict[str, Any]]] = [
        (401, dict(json={"inputs": {"text": "Hi."}})),
        (400, dict(content=b"{", headers={**JSON, "x-api-key": API_KEY})),
        (415, dict(content=b"{}", headers={"content-type": "text/plain", "x-api-key": API_KEY})),
        (422, dict(json={"inputs": {}}, headers={"x-api-key": API_KEY})),
    ]
    with httpx.Client(timeout=10) as c:
        for status, kw in cases:
            with c.stream("POST", url, **kw) as r:
                r.read()
                assert_problem(r, status)
                assert r.headers.get("content-length") == str(len(r.content))
