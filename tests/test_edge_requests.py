"""Issue 10, the HTTP layer's own limits that need no socket: media types, echoed
values, list cursors across tenants, key spelling, and whether the docs need a key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import httpx
import pytest
from conftest import API_KEY, OTHER_KEY, asgi_client, make_settings
from skillrun.http.app import create_app

pytestmark = pytest.mark.anyio

SUMMARIZE = "/v1/skills/text.summarize/execute"
TICKER = "/v1/skills/demo.ticker/execute"
BIG = 60_000  # the 60 KB id


@pytest.mark.parametrize(
    "content_type", ["APPLICATION/JSON", "Application/Json; charset=UTF-8", "application/json ; CHARSET=utf-8"]
)
async def test_media_type_is_case_insensitive_and_the_body_is_validated(
    client: httpx.AsyncClient, content_type: str
) -> None:
    """Finding: `Content-Type: APPLICATION/JSON` gave a 500 with a traceback and skipped
    body validation. Any spelling of application/json (RFC 9110: case-insensitive),
    with parameters, must validate like `application/json`: 422 for a bad body, 200 for a good one."""
    bad = b'{"inputs": {"text": "One. Two.", "max_sentences": 0}}'
    r = await client.post(SUMMARIZE, content=bad, headers={"Content-Type": content_type})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["inputs.max_sentences"]
    good = b'{"inputs": {"text": "One. Two.", "max_sentences": 1}}'
    r = await client.post(SUMMARIZE, content=good, headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"


async def test_structured_json_suffixes_are_415_as_the_spec_says(client: httpx.AsyncClient) -> None:
    """The spec accepts `application/json` only: a `+json` type (any case) is 415, not a 500."""
    for content_type in ("application/merge-patch+json", "APPLICATION/PROBLEM+JSON", "text/json"):
        r = await client.post(SUMMARIZE, content=b'{"inputs": {"text": "x"}}', headers={"Content-Type": content_type})
        assert r.status_code == 415, (content_type, r.text)
        assert r.headers["content-type"] == "application/problem+json"


async def test_problems_echo_only_a_bounded_prefix_of_a_bad_value(client: httpx.AsyncClient) -> None:
    """Finding: problem details echoed a bad value whole (a 60 KB id came back whole).
    Path parameters, headers (Idempotency-Key, Last-Event-ID), query parameters and
    body fields each sent 60,000 characters long: every answer stays small."""
    run_id = (await client.post(TICKER, json={"inputs": {"steps": 1}})).headers["x-run-id"]
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/runs/" + "r" * BIG, {}),
        ("POST", f"/v1/runs/{'r' * BIG}/cancel", {}),
        ("POST", TICKER, {"json": {"inputs": {"steps": 1}}, "headers": {"Idempotency-Key": "k" * BIG}}),
        ("GET", f"/v1/runs/{run_id}/events", {"headers": {"Last-Event-ID": "9" * BIG}}),
        ("GET", "/v1/runs", {"params": {"cursor": "c" * BIG}}),
        ("GET", "/v1/runs", {"params": {"skill_id": "s" * BIG}}),
        ("GET", "/v1/runs", {"params": {"x" * BIG: "1"}}),
        ("POST", SUMMARIZE, {"json": {"inputs": {"text": "t", "f" * BIG: 1}}}),
        ("POST", SUMMARIZE, {"json": {"inputs": {"text": 7, "max_sentences": "m" * BIG}}}),
        ("POST", SUMMARIZE, {"content": b"{}", "headers": {"Content-Type": "text/" + "p" * BIG}}),
    ]
    for method, path, kw in cases:
        r = await client.request(method, path, **kw)
        assert 400 <= r.status_code < 500, (path[:80], r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
        assert len(r.content) < 2500, (path[:80], r.text[:300])


async def _alice_pages(client: httpx.AsyncClient) -> tuple[str, list[str]]:
    first = (await client.get("/v1/runs", params={"limit": 2})).json()
    second = (await client.get("/v1/runs", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    return first["next_cursor"], [r["run_id"] for r in first["runs"] + second["runs"]]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_list_cursor_reveals_nothing_of_other_tenants(tmp_path: Path, store: str) -> None:
    """Finding: the runs list cursor was a global row number, so Alice's cursor jumped
    from 2 to 14 when Bob created runs. Alice creates 3 runs and lists 2 at a time; Bob
    creates 12 runs; Alice's cursor and pages are exactly what they were, the cursor
    names only her own run, and Bob given her cursor sees only his own runs."""
    db = ":memory:" if store == "memory" else str(tmp_path / "runs.db")
    app = create_app(make_settings(db=db))
    await app.services.store.open()
    try:
        async with asgi_client(app) as alice:
            bob = {"x-api-key": OTHER_KEY}
            mine = [(await alice.post(TICKER, json={"inputs": {"steps": 1}})).headers["x-run-id"] for _ in range(3)]
            cursor, pages = await _alice_pages(alice)
            assert pages == mine[::-1]
            for _ in range(12):
                assert (await alice.post(TICKER, json={"inputs": {"steps": 1}}, headers=bob)).status_code == 200
            assert await _alice_pages(alice) == (cursor, pages)
            digits, named = cursor.split("-", 1)
            assert named == mine[1]
            created_at = (await alice.get(f"/v1/runs/{named}")).json()["created_at"]
            assert digits == "".join(c for c in created_at if c.isdigit())
            # Bob holding Alice's cursor: it is not his run, so it only bounds by time.
            everything = (await alice.get("/v1/runs", params={"limit": 100}, headers=bob)).json()["runs"]
            assert len(everything) == 12 and not {r["run_id"] for r in everything} & set(mine)
            page = (await alice.get("/v1/runs", params={"cursor": cursor, "limit": 100}, headers=bob)).json()
            assert page["runs"] == [r for r in everything if r["created_at"] < created_at]
    finally:
        await app.services.store.close()


@pytest.mark.parametrize("key", ["clé-0123456789", "key\u00a0with-nbsp", "tab\tkey"])
def test_keys_that_are_not_printable_ascii_are_refused_at_start(key: str, tmp_path: Path) -> None:
    """Finding: keys that are not ASCII were accepted and could never match (a header
    carries ASCII). They are refused at start with a message naming the setting."""
    with pytest.raises(ValueError, match="SKILLRUN_API_KEYS: key 2 .*printable ASCII"):
        create_app(make_settings(api_keys=[API_KEY, key]))
    done = subprocess.run(
        [sys.executable, "-m", "skillrun", "serve", "--port", "1"],
        env={**_env(), "SKILLRUN_API_KEYS": f"{API_KEY},{key}"},
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "key 2 holds a character that is not printable ASCII" in done.stderr
    assert "Traceback" not in done.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("SKILLRUN_")}


@pytest.fixture
async def private_docs(app_factory: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app_factory(public_docs=False, rate_limit="3/minute")) as c:
        yield c


async def test_private_docs_need_a_key_and_limit_guessing(private_docs: httpx.AsyncClient) -> None:
    """SKILLRUN_PUBLIC_DOCS=0: the served spec and Swagger UI (every skill's inputs)
    answer 401 without a valid key, spend the address's budget (429 after it), and
    serve the key holder as before."""
    for path in ("/openapi.json", "/docs/"):
        assert (await private_docs.get(path)).status_code == 200, path
    r = await private_docs.get("/openapi.json", headers={"x-api-key": ""})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert (await private_docs.get("/docs/", headers={"x-api-key": "wrong"})).status_code == 401
    assert (await private_docs.get("/openapi.json", headers={"x-api-key": "wrong"})).status_code == 401
    r = await private_docs.get("/openapi.json", headers={"x-api-key": "wrong"})
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert (await private_docs.get("/v1/health/live", headers={"x-api-key": ""})).status_code == 200


async def test_docs_are_public_by_default(client: httpx.AsyncClient) -> None:
    """The default (SKILLRUN_PUBLIC_DOCS=1, see README): the contract is the same for
    every key, so serving it reveals nothing of any tenant; clients fetch it keyless."""
    r = await client.get("/openapi.json", headers={"x-api-key": ""})
    assert r.status_code == 200 and "/v1/skills/text.summarize/execute" in r.json()["paths"]
