# pyright: reportPrivateUsage=false
# (Resources call their own client's `_call`/`_get`: one package, kept out of the public API.)
"""``Client`` and ``AsyncClient``: configuration, resources, and the one retry loop each.

Everything but sending and sleeping is shared: :class:`_BaseClient` turns calls into
:class:`~skillrun_client._streaming.Call` data, :mod:`._retry` decides on retries,
:mod:`._exceptions` maps answers to errors.
"""

from __future__ import annotations

import os
import time
import uuid
from types import TracebackType
from typing import Any, Callable, Mapping, TypedDict, TypeVar

import anyio
import httpx
from pydantic import BaseModel
from typing_extensions import Unpack

from ._exceptions import SkillrunError, status_error
from ._generated.models import ExecuteOptions, Run, RunList, SkillDescription, SkillSummary, SkillList
from ._retry import Backoff, RequestRetry, RetryPolicy
from ._streaming import AsyncStream, Call, ResumeState, Stream, dropped
from ._types import RunResult

__all__ = ["Client", "AsyncClient", "RequestOptions", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
VERSION = "0.1.0"
ModelT = TypeVar("ModelT", bound=BaseModel)


class RequestOptions(TypedDict, total=False):
    """Per-call options; each overrides the client's own for that call."""

    timeout: float
    """Seconds for a whole answer (for a stream: to connect and get its headers)."""
    idle_timeout: float
    """Streams: seconds without a single byte after which the connection counts as dropped."""
    max_retries: int
    """Retries of a failed request, and reconnects of a stream in a row without progress."""
    headers: Mapping[str, str]
    trace_id: str
    """Sent as ``x-trace-id``; the server echoes it in every event."""
    idempotency_key: str
    """Starting a run: the same key names the same run (generated per call when absent)."""


class _BaseClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        idle_timeout: float = 45.0,
        max_retries: int = 5,
        headers: Mapping[str, str] | None = None,
        trace_id: str | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.base_url = base_url or os.environ.get("SKILLRUN_BASE_URL") or DEFAULT_BASE_URL
        self.api_key = api_key or os.environ.get("SKILLRUN_API_KEY")
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.max_retries = max_retries
        self.trace_id = trace_id
        self.backoff = backoff or Backoff()
        self._headers = {"User-Agent": f"skillrun-client/{VERSION} httpx/{httpx.__version__}", **(headers or {})}
        if self.api_key:
            self._headers["x-api-key"] = self.api_key

    def _call(
        self,
        method: str,
        path: str,
        options: RequestOptions,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        stream: bool = False,
        idempotent_start: bool = False,
    ) -> Call:
        headers = {**self._headers, **options.get("headers", {})}
        trace_id = options.get("trace_id", self.trace_id)
        if trace_id:
            headers["x-trace-id"] = trace_id
        if idempotent_start:
            # One key per call, reused by every retry of it: the server starts one run.
            headers["Idempotency-Key"] = options.get("idempotency_key") or str(uuid.uuid4())
        timeout = options.get("timeout", self.timeout)
        read = options.get("idle_timeout", self.idle_timeout) if stream else timeout
        return Call(
            method,
            path,
            headers=headers,
            params={k: v for k, v in (params or {}).items() if v is not None},
            json=json,
            timeout=httpx.Timeout(timeout, read=read),
        )

    def _execute_call(
        self,
        skill_id: str,
        suffix: str,
        inputs: Mapping[str, Any] | None,
        run_options: ExecuteOptions | Mapping[str, Any] | None,
        options: RequestOptions,
    ) -> Call:
        body: dict[str, Any] = {"inputs": dict(inputs or {})}
        if isinstance(run_options, ExecuteOptions):
            body["options"] = run_options.model_dump(exclude_none=True)
        elif run_options is not None:
            body["options"] = dict(run_options)
        return self._call(
            "POST", f"/v1/skills/{skill_id}/{suffix}", options, json=body, stream=suffix.endswith("stream"), idempotent_start=True
        )

    def _retry(self, options: RequestOptions) -> RequestRetry:
        return RequestRetry(options.get("max_retries", self.max_retries), self.backoff)

    def _stream_state(
        self, call: Call, options: RequestOptions, *, run_id: str | None = None, last_event_id: str | None = None
    ) -> ResumeState:
        return ResumeState(
            call,
            max_retries=options.get("max_retries", self.max_retries),
            backoff=self.backoff,
            run_id=run_id,
            last_event_id=last_event_id,
        )

    def _events_call(self, run_id: str, after: int | str | None, options: RequestOptions) -> tuple[Call, str | None]:
        call = self._call("GET", f"/v1/runs/{run_id}/events", options, stream=True)
        last = None if after is None else str(after)
        if last is not None:
            call.headers["Last-Event-ID"] = last
        return call, last

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        # An absolute URL, so an http_client of the caller's own needs no base_url.
        return http.build_request(
            call.method, self.base_url.rstrip("/") + call.path,
            headers=call.headers, params=call.params, json=call.json, timeout=call.timeout,
        )  # fmt: skip


def _parse(model: type[ModelT], response: httpx.Response) -> ModelT:
    return model.model_validate_json(response.content)


class Client(_BaseClient):
    """A synchronous Skillrun client. Use it as a context manager, or call ``close()``.

    ``base_url`` and ``api_key`` default to ``SKILLRUN_BASE_URL`` and ``SKILLRUN_API_KEY``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        idle_timeout: float = 45.0,
        max_retries: int = 5,
        headers: Mapping[str, str] | None = None,
        trace_id: str | None = None,
        backoff: Backoff | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, timeout=timeout, idle_timeout=idle_timeout, max_retries=max_retries,
            headers=headers, trace_id=trace_id, backoff=backoff,
        )  # fmt: skip
        self._http = http_client or httpx.Client()
        self.skills = Skills(self)
        self.runs = Runs(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def stream(
        self,
        skill_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        options: ExecuteOptions | Mapping[str, Any] | None = None,
        **request_options: Unpack[RequestOptions],
    ) -> Stream:
        """Start a run and follow its events (the request is sent on ``with`` or first use)."""
        call = self._execute_call(skill_id, "execute/stream", inputs, options, request_options)
        return Stream(self, self._stream_state(call, request_options))

    def execute(
        self,
        skill_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        options: ExecuteOptions | Mapping[str, Any] | None = None,
        **request_options: Unpack[RequestOptions],
    ) -> RunResult:
        """Run a skill to its end. A failed run is a result: see ``raise_for_status()``."""
        call = self._execute_call(skill_id, "execute", inputs, options, request_options)
        return _parse(RunResult, self._send(lambda: call, self._retry(request_options)))

    def execute_async(
        self,
        skill_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        options: ExecuteOptions | Mapping[str, Any] | None = None,
        **request_options: Unpack[RequestOptions],
    ) -> Run:
        """Start a run in the background; follow it with ``runs.events(run.run_id)``."""
        call = self._execute_call(skill_id, "execute/async", inputs, options, request_options)
        return _parse(Run, self._send(lambda: call, self._retry(request_options)))

    def _get(self, model: type[ModelT], call: Call, options: RequestOptions) -> ModelT:
        return _parse(model, self._send(lambda: call, self._retry(options)))

    def _send(self, make_call: Callable[[], Call], policy: RetryPolicy, *, stream: bool = False) -> httpx.Response:
        """Send until an answer is a success or ``policy`` gives up (it raises)."""
        while True:
            request = self._build(self._http, make_call())
            error: SkillrunError
            try:
                response = self._http.send(request, stream=stream)
                if response.is_success:
                    return response
                response.read()
                response.close()
                error = status_error(response)
            except httpx.TransportError as exc:
                error = dropped(exc)
            time.sleep(policy.next_delay(error))


class Skills:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, **options: Unpack[RequestOptions]) -> list[SkillSummary]:
        """The loaded skills, sorted by id."""
        call = self._client._call("GET", "/v1/skills", options)
        return self._client._get(SkillList, call, options).skills

    def get(self, skill_id: str, **options: Unpack[RequestOptions]) -> SkillDescription:
        """One skill: its inputs' JSON Schema, outputs and steps."""
        call = self._client._call("GET", f"/v1/skills/{skill_id}", options)
        return self._client._get(SkillDescription, call, options)


class Runs:
    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, run_id: str, **options: Unpack[RequestOptions]) -> Run:
        call = self._client._call("GET", f"/v1/runs/{run_id}", options)
        return self._client._get(Run, call, options)

    def list(
        self,
        *,
        status: str | None = None,
        skill_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> RunList:
        """One page of runs, newest first; pass ``next_cursor`` back for the next."""
        params = {"status": status, "skill_id": skill_id, "limit": limit, "cursor": cursor}
        call = self._client._call("GET", "/v1/runs", options, params=params)
        return self._client._get(RunList, call, options)

    def cancel(self, run_id: str, **options: Unpack[RequestOptions]) -> Run:
        """Ask the run to stop (ConflictError if it has already ended)."""
        call = self._client._call("POST", f"/v1/runs/{run_id}/cancel", options)
        return self._client._get(Run, call, options)

    def events(self, run_id: str, *, after: int | str | None = None, **options: Unpack[RequestOptions]) -> Stream:
        """The run's events after event ``after`` (all when None), live until ``done``."""
        call, last = self._client._events_call(run_id, after, options)
        return Stream(self._client, self._client._stream_state(call, options, run_id=run_id, last_event_id=last))


class AsyncClient(_BaseClient):
    """The ``async`` twin of :class:`Client`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        idle_timeout: float = 45.0,
        max_retries: int = 5,
        headers: Mapping[str, str] | None = None,
        trace_id: str | None = None,
        backoff: Backoff | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, timeout=timeout, idle_timeout=idle_timeout, max_retries=max_retries,
            headers=headers, trace_id=trace_id, backoff=backoff,
        )  # fmt: skip
        self._http = http_client or httpx.AsyncClient()
        self.skills = AsyncSkills(self)
        self.runs = AsyncRuns(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    def stream(
        self,
        skill_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        options: ExecuteOptions | Mapping[str, Any] | None = None,
        **request_options: Unpack[RequestOptions],
    ) -> AsyncStream:
        """Start a run and follow its events (the request is sent on ``async with`` or first use)."""
        call = self._execute_call(skill_id, "execute/stream", inputs, options, request_options)
        return AsyncStream(self, self._stream_state(call, request_options))

    async def execute(
        self,
        skill_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        options: ExecuteOptions | Mapping[str, Any] | None = None,
        **request_options: Unpack[RequestOptions],
    ) -> RunResult:
        """Run a skill to its end. A failed run is a result: see ``raise_for_status()``."""
        call = self._execute_call(skill_id, "execute", inputs, options, request_options)
        return _parse(RunResult, await self._send(lambda: call, self._retry(request_options)))

    async def execute_async(
        self,
        skill_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        options: ExecuteOptions | Mapping[str, Any] | None = None,
        **request_options: Unpack[RequestOptions],
    ) -> Run:
        """Start a run in the background; follow it with ``runs.events(run.run_id)``."""
        call = self._execute_call(skill_id, "execute/async", inputs, options, request_options)
        return _parse(Run, await self._send(lambda: call, self._retry(request_options)))

    async def _get(self, model: type[ModelT], call: Call, options: RequestOptions) -> ModelT:
        return _parse(model, await self._send(lambda: call, self._retry(options)))

    async def _send(self, make_call: Callable[[], Call], policy: RetryPolicy, *, stream: bool = False) -> httpx.Response:
        """Send until an answer is a success or ``policy`` gives up (it raises)."""
        while True:
            request = self._build(self._http, make_call())
            error: SkillrunError
            try:
                response = await self._http.send(request, stream=stream)
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                error = status_error(response)
            except httpx.TransportError as exc:
                error = dropped(exc)
            await anyio.sleep(policy.next_delay(error))


class AsyncSkills:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self, **options: Unpack[RequestOptions]) -> list[SkillSummary]:
        """The loaded skills, sorted by id."""
        call = self._client._call("GET", "/v1/skills", options)
        return (await self._client._get(SkillList, call, options)).skills

    async def get(self, skill_id: str, **options: Unpack[RequestOptions]) -> SkillDescription:
        """One skill: its inputs' JSON Schema, outputs and steps."""
        call = self._client._call("GET", f"/v1/skills/{skill_id}", options)
        return await self._client._get(SkillDescription, call, options)


class AsyncRuns:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, run_id: str, **options: Unpack[RequestOptions]) -> Run:
        call = self._client._call("GET", f"/v1/runs/{run_id}", options)
        return await self._client._get(Run, call, options)

    async def list(
        self,
        *,
        status: str | None = None,
        skill_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> RunList:
        """One page of runs, newest first; pass ``next_cursor`` back for the next."""
        params = {"status": status, "skill_id": skill_id, "limit": limit, "cursor": cursor}
        call = self._client._call("GET", "/v1/runs", options, params=params)
        return await self._client._get(RunList, call, options)

    async def cancel(self, run_id: str, **options: Unpack[RequestOptions]) -> Run:
        """Ask the run to stop (ConflictError if it has already ended)."""
        call = self._client._call("POST", f"/v1/runs/{run_id}/cancel", options)
        return await self._client._get(Run, call, options)

    def events(self, run_id: str, *, after: int | str | None = None, **options: Unpack[RequestOptions]) -> AsyncStream:
        """The run's events after event ``after`` (all when None), live until ``done``."""
        call, last = self._client._events_call(run_id, after, options)
        return AsyncStream(self._client, self._client._stream_state(call, options, run_id=run_id, last_event_id=last))
