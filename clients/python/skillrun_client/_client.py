# pyright: reportPrivateUsage=false
# (Resources call their own client's `_call`/`_get`: one package, kept out of the public API.)
"""``Client`` and ``AsyncClient``: configuration and resources.

Everything but sending and sleeping is shared: :class:`_BaseClient` turns calls into
:class:`~skillrun_client._transport.Call` data, :mod:`._transport` sends them,
:mod:`._retry` decides on retries, :mod:`._exceptions` maps answers to errors.
"""

from __future__ import annotations

import os
import uuid
from types import TracebackType
from typing import Any, Mapping, TypedDict, TypeVar

import httpx
from pydantic import BaseModel
from typing_extensions import Unpack

from ._generated import defaults
from ._generated.models import ExecuteOptions, Run, RunList, SkillDescription, SkillList
from ._retry import Backoff, RequestRetry
from ._streaming import AsyncStream, ResumeState, Stream
from ._transport import Call, asend, segment, send
from ._types import RunResult

__all__ = ["Client", "AsyncClient", "RequestOptions", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
VERSION = "0.1.0"
ModelT = TypeVar("ModelT", bound=BaseModel)


class RequestOptions(TypedDict, total=False):
    """The options of the client, and of each call (where they override the client's)."""

    timeout: float
    """Seconds for each step of a request: to connect, to send, and (except for a stream,
    which waits ``idle_timeout``) each wait for the answer. Default 60."""
    idle_timeout: float
    """Streams: seconds without a single byte (heartbeats count) after which the
    connection counts as dropped and is resumed. Default 45."""
    max_retries: int
    """Retries of a failed request, and reconnects of a stream in a row without progress. Default 5."""
    max_retry_after: float
    """The longest ``Retry-After`` (seconds) waited for; a longer one is raised at once. Default 60."""
    strict: bool
    """Streams: an event the models cannot read (a newer type, unknown or unreadable fields)
    raises :class:`StreamError` instead of arriving as an ``UnknownEvent``. For tests. Default False."""
    headers: Mapping[str, str]
    """Extra headers; a call's are added to (and override) the client's."""
    trace_id: str
    """Sent as ``x-trace-id``; the server echoes it in every event."""
    idempotency_key: str
    """Sent as ``Idempotency-Key`` by the calls that start a run: the server starts one run
    per key. Default: a new key per call, reused by that call's retries. On the client it
    is the key of every run the client starts (a client for one job that must run once)."""


class _BaseClient:
    def __init__(
        self, base_url: str | None, api_key: str | None, backoff: Backoff | None, options: RequestOptions
    ) -> None:
        self.base_url = base_url or os.environ.get("SKILLRUN_BASE_URL") or DEFAULT_BASE_URL
        self.api_key = api_key or os.environ.get("SKILLRUN_API_KEY")
        self.timeout = options.get("timeout", 60.0)
        # The behaviour table shared with the JS client: the spec's info.x-skillrun-client-defaults.
        self.idle_timeout = options.get("idle_timeout", defaults.IDLE_TIMEOUT_MS / 1000)
        self.max_retries = options.get("max_retries", defaults.MAX_RETRIES)
        self.max_retry_after = options.get("max_retry_after", float(defaults.MAX_RETRY_AFTER_S))
        self.strict = options.get("strict", False)
        self.trace_id = options.get("trace_id")
        self.idempotency_key = options.get("idempotency_key")
        self.backoff = backoff or Backoff()
        self._headers = {"User-Agent": f"skillrun-client/{VERSION} httpx/{httpx.__version__}", **options.get("headers", {})}
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
            headers["Idempotency-Key"] = options.get("idempotency_key") or self.idempotency_key or str(uuid.uuid4())
        timeout = options.get("timeout", self.timeout)
        read = options.get("idle_timeout", self.idle_timeout) if stream else timeout
        return Call(
            method,
            self.base_url,
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
            "POST", f"/v1/skills/{segment(skill_id)}/{suffix}", options, json=body, stream=suffix.endswith("stream"), idempotent_start=True
        )

    def _retry(self, options: RequestOptions) -> RequestRetry:
        return RequestRetry(options.get("max_retries", self.max_retries), self.backoff, options.get("max_retry_after", self.max_retry_after))

    def _stream_state(
        self, call: Call, options: RequestOptions, *, run_id: str | None = None, last_event_id: str | None = None
    ) -> ResumeState:
        return ResumeState(
            call,
            max_retries=options.get("max_retries", self.max_retries),
            backoff=self.backoff,
            run_id=run_id,
            last_event_id=last_event_id,
            max_retry_after=options.get("max_retry_after", self.max_retry_after),
            strict=options.get("strict", self.strict),
        )

    def _events_call(self, run_id: str, after: int | str | None, options: RequestOptions) -> tuple[Call, str | None]:
        call = self._call("GET", f"/v1/runs/{segment(run_id)}/events", options, stream=True)
        last = None if after is None else str(after)
        if last is not None:
            call.headers["Last-Event-ID"] = last
        return call, last


def _parse(model: type[ModelT], response: httpx.Response) -> ModelT:
    return model.model_validate_json(response.content)


class Client(_BaseClient):
    """A synchronous Skillrun client. Use it as a context manager, or call ``close()``.

    ``base_url`` and ``api_key`` default to ``SKILLRUN_BASE_URL`` and ``SKILLRUN_API_KEY``;
    ``options`` (:class:`RequestOptions`) are the defaults of every call; ``backoff`` sets
    the waits between retries and reconnects.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        backoff: Backoff | None = None,
        http_client: httpx.Client | None = None,
        **options: Unpack[RequestOptions],
    ) -> None:
        super().__init__(base_url, api_key, backoff, options)
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
        return Stream(self._http, self._stream_state(call, request_options))

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
        return self._get(RunResult, call, request_options)

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
        return self._get(Run, call, request_options)

    def _get(self, model: type[ModelT], call: Call, options: RequestOptions) -> ModelT:
        return _parse(model, send(self._http, lambda: call, self._retry(options)))


class Skills:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, **options: Unpack[RequestOptions]) -> SkillList:
        """The loaded skills, sorted by id, in ``.skills`` (the body, as ``runs.list`` answers its page)."""
        call = self._client._call("GET", "/v1/skills", options)
        return self._client._get(SkillList, call, options)

    def get(self, skill_id: str, **options: Unpack[RequestOptions]) -> SkillDescription:
        """One skill: its inputs' JSON Schema, outputs and steps."""
        call = self._client._call("GET", f"/v1/skills/{segment(skill_id)}", options)
        return self._client._get(SkillDescription, call, options)


class Runs:
    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, run_id: str, **options: Unpack[RequestOptions]) -> Run:
        call = self._client._call("GET", f"/v1/runs/{segment(run_id)}", options)
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
        call = self._client._call("POST", f"/v1/runs/{segment(run_id)}/cancel", options)
        return self._client._get(Run, call, options)

    def input(
        self, run_id: str, step_id: str, value: Any, index: int | None = None, **options: Unpack[RequestOptions]
    ) -> Run:
        """Answer the step waiting for input (``StepWaitingEvent``): ``step_id`` as the event
        gave it, ``index`` for a ``foreach`` item. ValidationError (422) if ``value`` breaks
        the event's ``schema``; ConflictError (409) if that step does not wait (any more)."""
        call = self._client._call("POST", f"/v1/runs/{segment(run_id)}/input", options,
                                  json=_answer(step_id, value, index))
        return self._client._get(Run, call, options)

    def events(self, run_id: str, *, after: int | str | None = None, **options: Unpack[RequestOptions]) -> Stream:
        """The run's events after event ``after`` (all when None), live until ``done``."""
        call, last = self._client._events_call(run_id, after, options)
        return Stream(self._client._http, self._client._stream_state(call, options, run_id=run_id, last_event_id=last))


def _answer(step_id: str, value: Any, index: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"step_id": step_id, "value": value}
    if index is not None:
        body["index"] = index
    return body


class AsyncClient(_BaseClient):
    """The ``async`` twin of :class:`Client`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        backoff: Backoff | None = None,
        http_client: httpx.AsyncClient | None = None,
        **options: Unpack[RequestOptions],
    ) -> None:
        super().__init__(base_url, api_key, backoff, options)
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
        return AsyncStream(self._http, self._stream_state(call, request_options))

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
        return await self._get(RunResult, call, request_options)

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
        return await self._get(Run, call, request_options)

    async def _get(self, model: type[ModelT], call: Call, options: RequestOptions) -> ModelT:
        return _parse(model, await asend(self._http, lambda: call, self._retry(options)))


class AsyncSkills:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self, **options: Unpack[RequestOptions]) -> SkillList:
        """The loaded skills, sorted by id, in ``.skills`` (the body, as ``runs.list`` answers its page)."""
        call = self._client._call("GET", "/v1/skills", options)
        return await self._client._get(SkillList, call, options)

    async def get(self, skill_id: str, **options: Unpack[RequestOptions]) -> SkillDescription:
        """One skill: its inputs' JSON Schema, outputs and steps."""
        call = self._client._call("GET", f"/v1/skills/{segment(skill_id)}", options)
        return await self._client._get(SkillDescription, call, options)


class AsyncRuns:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, run_id: str, **options: Unpack[RequestOptions]) -> Run:
        call = self._client._call("GET", f"/v1/runs/{segment(run_id)}", options)
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
        call = self._client._call("POST", f"/v1/runs/{segment(run_id)}/cancel", options)
        return await self._client._get(Run, call, options)

    async def input(
        self, run_id: str, step_id: str, value: Any, index: int | None = None, **options: Unpack[RequestOptions]
    ) -> Run:
        """Answer the step waiting for input (see :meth:`Runs.input`)."""
        call = self._client._call("POST", f"/v1/runs/{segment(run_id)}/input", options,
                                  json=_answer(step_id, value, index))
        return await self._client._get(Run, call, options)

    def events(self, run_id: str, *, after: int | str | None = None, **options: Unpack[RequestOptions]) -> AsyncStream:
        """The run's events after event ``after`` (all when None), live until ``done``."""
        call, last = self._client._events_call(run_id, after, options)
        return AsyncStream(self._client._http, self._client._stream_state(call, options, run_id=run_id, last_event_id=last))
