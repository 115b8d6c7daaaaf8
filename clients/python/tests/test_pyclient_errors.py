"""Every error answer becomes the right exception, through both clients."""

from __future__ import annotations

import asyncio
import json
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx
import pytest

import skillrun_client
from skillrun_client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RunFailedError,
    RunResult,
    SkillrunError,
    StreamError,
    ValidationError,
)
from skillrun_client._exceptions import retry_after

from .conftest import Request, ScriptServer, Server, answer, call, collect, free_port

pytestmark = pytest.mark.anyio

PROBLEM = {"type": "about:blank", "title": "Nope", "status": 0, "detail": "it went wrong"}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, APIStatusError),
        (415, APIStatusError),
        (422, ValidationError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (504, InternalServerError),
    ],
)
async def test_status_maps_to_its_class(make_client: Callable[..., Any], status: int, cls: type[APIStatusError]) -> None:
    body = {**PROBLEM, "status": status}
    async with ScriptServer([answer(status, body, {"x-trace-id": "tr-1"})]) as srv:
        c = make_client(srv.url, max_retries=0)
        with pytest.raises(cls) as info:
            await call(c.skills.list)
    err = info.value
    assert type(err) is cls
    assert err.status_code == status and err.problem.detail == "it went wrong" and err.problem.title == "Nope"
    assert err.request_id == "tr-1" and err.response.status_code == status
    assert str(err) == f"{status} Nope: it went wrong"


async def test_validation_error_names_each_field(make_client: Callable[..., Any]) -> None:
    body = {"title": "Unprocessable", "status": 422, "errors": [{"field": "inputs.text", "message": "required"}]}
    async with ScriptServer([answer(422, body)]) as srv:
        with pytest.raises(ValidationError) as info:
            await call(make_client(srv.url).execute, "s", {})
    assert info.value.problem.errors is not None and info.value.problem.errors[0].field == "inputs.text"
    assert str(info.value) == "422 Unprocessable (inputs.text: required)"


async def test_a_body_that_is_not_a_problem_still_gives_a_problem(make_client: Callable[..., Any]) -> None:
    async with ScriptServer([answer(502, raw=b"<html>bad gateway</html>")]) as srv:
        with pytest.raises(InternalServerError) as info:
            await call(make_client(srv.url, max_retries=0).skills.list)
    assert info.value.problem.status == 502 and info.value.problem.detail == "<html>bad gateway</html>"
    async with ScriptServer([answer(418, raw=b"")]) as srv:
        with pytest.raises(APIStatusError) as info:
            await call(make_client(srv.url).skills.list)
    assert info.value.problem.title == "X" and info.value.problem.detail is None


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after(httpx.Headers({"Retry-After": " 7 "})) == 7.0
    assert retry_after(httpx.Headers()) is None
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after(httpx.Headers({"Retry-After": later})) or 0) <= 30
    past = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=30), usegmt=True)
    assert retry_after(httpx.Headers({"Retry-After": past})) == 0.0


async def test_rate_limit_error_carries_retry_after(make_client: Callable[..., Any]) -> None:
    async with ScriptServer([answer(429, {**PROBLEM, "status": 429}, {"Retry-After": "42"})]) as srv:
        with pytest.raises(RateLimitError) as info:
            await call(make_client(srv.url, max_retries=0).skills.list)
    assert info.value.retry_after == 42.0


async def test_real_server_wrong_key_is_authentication_error(make_client: Callable[..., Any], server: Server) -> None:
    c = make_client(server.url, api_key="wrong-key-0000000000")
    with pytest.raises(AuthenticationError) as info:
        await call(c.skills.list)
    assert info.value.problem.status == 401


async def test_real_server_unknown_skill_is_not_found(client: Any) -> None:
    with pytest.raises(NotFoundError):
        await call(client.skills.get, "no.such.skill")
    with pytest.raises(NotFoundError):
        await call(client.execute, "no.such.skill", {})
    # A stream's HTTP errors surface when it opens, before any event.
    with pytest.raises(NotFoundError):
        await collect(client.stream("no.such.skill", {}))


async def test_real_server_bad_inputs_are_validation_errors(client: Any) -> None:
    with pytest.raises(ValidationError) as info:
        await collect(client.stream("text.summarize", {"max_sentences": 0}))
    fields = {e.field for e in info.value.problem.errors or []}
    assert any(f.startswith("inputs") for f in fields), fields


@pytest.mark.parametrize("skill_id", ["..", "text.summarize?x=1", "text.summarize#x", "a b"])
async def test_an_id_is_one_path_segment(client: Any, skill_id: str) -> None:
    # Unquoted, each would reach another route (or another skill) than the one named.
    with pytest.raises(BadRequestError) as info:
        await call(client.skills.get, skill_id)
    assert "skill_id" in str(info.value)
    with pytest.raises(BadRequestError):
        await call(client.execute, skill_id, {"text": "One."})


async def test_real_server_unknown_run_is_not_found(client: Any) -> None:
    with pytest.raises(NotFoundError):
        await call(client.runs.get, "run_doesnotexist")
    with pytest.raises(NotFoundError):
        await collect(client.runs.events("run_doesnotexist"))


async def test_connection_refused_is_connection_error(make_client: Callable[..., Any]) -> None:
    c = make_client(f"http://127.0.0.1:{free_port()}", max_retries=1)
    with pytest.raises(APIConnectionError) as info:
        await call(c.skills.list)
    assert type(info.value) is APIConnectionError and isinstance(info.value.__cause__, httpx.ConnectError)


async def test_no_answer_in_time_is_timeout_error(make_client: Callable[..., Any]) -> None:
    async def silent(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with ScriptServer([silent]) as srv:
        with pytest.raises(APITimeoutError) as info:
            await call(make_client(srv.url, timeout=0.2, max_retries=0).skills.list)
    assert isinstance(info.value, APIConnectionError) and "ReadTimeout" in str(info.value)


async def test_per_call_timeout_overrides_the_client(make_client: Callable[..., Any]) -> None:
    async def silent(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with ScriptServer([silent]) as srv:
        started = asyncio.get_running_loop().time()
        with pytest.raises(APITimeoutError):
            await call(make_client(srv.url, timeout=30, max_retries=0).skills.list, timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 5


async def test_failed_run_is_a_result_until_raise_for_status(client: Any) -> None:
    result = await call(client.execute, "demo.showcase", {"text": "One. Two.", "fail": True})
    assert isinstance(result, RunResult) and result.status == "failed"
    with pytest.raises(RunFailedError) as info:
        result.raise_for_status()
    assert info.value.result is result and result.run_id in str(info.value) and "ended failed" in str(info.value)
    ok = await call(client.execute, "text.summarize", {"text": "One. Two."})
    assert ok.raise_for_status() is ok


def test_run_failed_error_without_error_detail() -> None:
    result = RunResult(skill_id="s", status="cancelled", outputs={}, trace_id="t", run_id="r", duration_ms=1, steps=[])
    assert str(RunFailedError(result)) == "run r of s ended cancelled"


def test_error_tree() -> None:
    for cls in (BadRequestError, AuthenticationError, NotFoundError, ConflictError, ValidationError, RateLimitError, InternalServerError):
        assert issubclass(cls, APIStatusError)
    assert issubclass(APITimeoutError, APIConnectionError)
    for cls in (APIStatusError, APIConnectionError, StreamError, RunFailedError):
        assert issubclass(cls, SkillrunError)
    doc = skillrun_client._exceptions.__doc__ or ""
    for name in skillrun_client._exceptions.__all__:
        assert name in doc, name


def test_public_names_are_complete() -> None:
    public = {n for n in dir(skillrun_client) if not n.startswith("_") and n not in ("models", "typed")}  # public submodules
    assert public - {"annotations"} == set(skillrun_client.__all__)
    assert json.dumps(skillrun_client.__all__)  # plain strings
