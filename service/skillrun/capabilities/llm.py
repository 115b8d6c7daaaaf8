"""``llm.chat``: a chat model behind any OpenAI-compatible Chat Completions endpoint.

The call streams (``stream: true``, Server-Sent Events): each content chunk is
reported as it comes (``emit_delta``: the step's ``step_delta`` events), and the
step's output is the whole answer. The endpoint and its key are the operator's
(``SKILLRUN_LLM_BASE_URL``, ``SKILLRUN_LLM_API_KEY``); the key is sent as a bearer
token and never appears in a log line, an event or an error message.

Failures, as error kinds (a step's ``retry`` and ``on_error`` apply):

- ``unconfigured``: no endpoint is set (never retried: set it, or use a fallback);
- ``upstream_rate_limited`` (429) and ``upstream_unavailable`` (5xx): retried, not
  sooner than the answer's ``Retry-After``;
- ``upstream_status``: any other 4xx (a bad key, an unknown model; never retried);
- ``upstream_protocol``: the answer is not the stream the API defines (not SSE, a
  chunk that is not JSON, a stream that ends without ``[DONE]``);
- ``upstream_error``: the endpoint could not be reached or the connection broke
  before the answer began; ``timeout``: it answered nothing for ``timeout_ms``.

A cancel (or the step's deadline) closes the upstream request at once: the
response is read inside ``async with``, whose exit closes the connection.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import httpx

from ..engine.capability import Capability, CapabilityError, emit_delta

ERROR_KINDS = frozenset(
    {"unconfigured", "upstream_rate_limited", "upstream_unavailable", "upstream_status", "upstream_protocol",
     "upstream_error"}
)

# The longest answer kept (characters): past it the step fails rather than filling memory.
MAX_TEXT_CHARS = 2_000_000
# The most of an error answer's body read to say what went wrong.
_ERROR_BODY_BYTES = 4096

UsageHook = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LlmConfig:
    """Where ``llm.chat`` sends its requests; ``on_usage(model, input_tokens,
    output_tokens)`` is told each call's usage (observability)."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    on_usage: UsageHook | None = None
    connect_timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> "LlmConfig":
        """``SKILLRUN_LLM_BASE_URL`` and ``SKILLRUN_LLM_API_KEY`` (as ``Settings`` reads them)."""
        return cls(os.environ.get("SKILLRUN_LLM_BASE_URL") or None, os.environ.get("SKILLRUN_LLM_API_KEY") or None)


_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "additionalProperties": False,
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant"]},
        "content": {"type": "string"},
    },
}

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["messages"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "minLength": 1, "description": "The model's name at the endpoint (default `default`)."},
        "system": {"type": "string", "description": "A system message put before `messages`."},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE, "description": "The conversation so far."},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 3_600_000,
                       "description": "The longest silence between two chunks (default 60000)."},
    },
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "text": {"type": "string"},
        "model": {"type": "string"},
        "finish_reason": {"type": ["string", "null"]},
        "usage": {
            "type": "object",
            "properties": {"input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"}},
        },
    },
}


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delay-seconds or an HTTP-date; RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Answer:
    """What the stream has said so far."""

    __slots__ = ("parts", "chars", "model", "finish_reason", "usage", "done")

    def __init__(self, model: str) -> None:
        self.parts: list[str] = []
        self.chars = 0
        self.model = model
        self.finish_reason: str | None = None
        self.usage = {"input_tokens": 0, "output_tokens": 0}
        self.done = False

    def chunk(self, payload: str) -> None:
        """One ``data:`` payload: a ``chat.completion.chunk`` (or ``[DONE]``)."""
        if payload.strip() == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise _protocol(f"a chunk is not JSON: {payload[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise _protocol("a chunk is not a JSON object")
        if isinstance(chunk.get("error"), dict):  # some servers report a failure mid-stream so
            message = str(chunk["error"].get("message", ""))[:200]
            raise CapabilityError(f"the model endpoint failed mid-stream: {message}", kind="upstream_error")
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        self._usage(chunk.get("usage"))
        choices = chunk.get("choices", [])
        if not isinstance(choices, list):
            raise _protocol("a chunk's choices is not a list")
        for choice in choices[:1]:  # one answer is asked for (n = 1)
            self._choice(choice)

    def _choice(self, choice: Any) -> None:
        if not isinstance(choice, dict) or not isinstance(choice.get("delta", {}), dict):
            raise _protocol("a chunk's choice has no delta object")
        content = choice.get("delta", {}).get("content")
        if content is not None and not isinstance(content, str):
            raise _protocol("a chunk's delta.content is not a string")
        if content:
            self.chars += len(content)
            if self.chars > MAX_TEXT_CHARS:
                raise _protocol(f"the answer is longer than {MAX_TEXT_CHARS} characters")
            self.parts.append(content)
            emit_delta(content)
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for ours, theirs in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
            value = usage.get(theirs)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                self.usage[ours] = value

    def output(self) -> dict[str, Any]:
        return {"text": "".join(self.parts), "model": self.model, "finish_reason": self.finish_reason,
                "usage": dict(self.usage)}


def _protocol(message: str) -> CapabilityError:
    return CapabilityError(f"the model endpoint's stream is malformed: {message}", kind="upstream_protocol")


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each event of an SSE stream (WHATWG HTML 9.2.6: data lines
    joined by newlines, dispatched at a blank line; comments and other fields ignored)."""
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _request_body(args: dict[str, Any]) -> dict[str, Any]:
    messages = list(args["messages"])
    if args.get("system"):
        messages.insert(0, {"role": "system", "content": args["system"]})
    body: dict[str, Any] = {
        "model": args.get("model") or "default",
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},  # usage in the last chunk
    }
    for name in ("temperature", "max_tokens"):
        if name in args:
            body[name] = args[name]
    return body


class LlmChat:
    """The capability's function, bound to its configuration."""

    def __init__(self, config: LlmConfig) -> None:
        self.config = config

    def _clean(self, message: str) -> str:
        """A message for an event: never the key, even if an upstream echoed it."""
        key = self.config.api_key
        return message.replace(key, "[REDACTED]") if key else message

    async def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._chat(args)
        except CapabilityError as exc:
            raise CapabilityError(self._clean(str(exc)), exc.kind, exc.retry_after_s) from None

    async def _chat(self, args: dict[str, Any]) -> dict[str, Any]:
        base = self.config.base_url
        if not base:
            raise CapabilityError(
                "no model endpoint is configured: set SKILLRUN_LLM_BASE_URL (an OpenAI-compatible API, "
                "e.g. http://127.0.0.1:11434/v1) and, if it needs one, SKILLRUN_LLM_API_KEY",
                kind="unconfigured",
            )
        headers = {"Accept": "text/event-stream"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        read_s = args.get("timeout_ms", 60_000) / 1000
        timeout = httpx.Timeout(read_s, connect=self.config.connect_timeout_s)
        body = _request_body(args)
        answer = _Answer(body["model"])
        try:
            async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
                async with client.stream("POST", base.rstrip("/") + "/chat/completions", json=body,
                                         headers=headers) as response:
                    await self._check(response)
                    async for payload in sse_data(response.aiter_lines()):
                        answer.chunk(payload)
                        if answer.done:
                            break
        except httpx.TimeoutException:
            raise CapabilityError(f"the model endpoint sent nothing for {read_s:g} s", kind="timeout") from None
        except httpx.RemoteProtocolError as exc:
            raise _protocol(f"the connection broke mid-answer ({exc})") from None
        except httpx.HTTPError as exc:
            raise CapabilityError(f"the model endpoint could not be reached: {type(exc).__name__}",
                                  kind="upstream_error") from None
        if not answer.done:
            raise _protocol("the stream ended before data: [DONE]")
        output = answer.output()
        if self.config.on_usage is not None:
            self.config.on_usage(output["model"], output["usage"]["input_tokens"], output["usage"]["output_tokens"])
        return output

    async def _check(self, response: httpx.Response) -> None:
        """An answer that is not a stream: the right kind, with the upstream's reason."""
        status = response.status_code
        if status >= 400:
            wait = retry_after_s(response.headers.get("retry-after"))
            reason = await _reason(response)
            if status == 429:
                raise CapabilityError(f"the model endpoint is rate limited (429){reason}",
                                      kind="upstream_rate_limited", retry_after_s=wait)
            if status >= 500:
                raise CapabilityError(f"the model endpoint failed ({status}){reason}",
                                      kind="upstream_unavailable", retry_after_s=wait)
            hint = "; check SKILLRUN_LLM_API_KEY" if status in (401, 403) else ""
            raise CapabilityError(f"the model endpoint refused the request ({status}){reason}{hint}",
                                  kind="upstream_status")
        ctype = response.headers.get("content-type", "")
        if "text/event-stream" not in ctype:
            raise _protocol(f"the answer is {ctype or 'untyped'}, not text/event-stream")


async def _reason(response: httpx.Response) -> str:
    """``: <message>`` from an OpenAI-style error body (``{"error": {"message"}}``), if any."""
    raw = b""
    async for part in response.aiter_bytes():
        raw += part
        if len(raw) >= _ERROR_BODY_BYTES:
            break
    try:
        error = json.loads(raw[:_ERROR_BODY_BYTES]).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        return ""
    return f": {str(message)[:200]}" if message else ""


def make_capability(config: LlmConfig | None = None) -> Capability:
    """``llm.chat`` with ``config`` (default: from the environment)."""
    return Capability(
        "llm.chat",
        LlmChat(config if config is not None else LlmConfig.from_env()),
        "Ask a chat model (an OpenAI-compatible endpoint, SKILLRUN_LLM_BASE_URL); its answer streams as"
        " `step_delta` text. Fails with `unconfigured` when no endpoint is set.",
        INPUT_SCHEMA,
        OUTPUT_SCHEMA,
        error_kinds=ERROR_KINDS,
    )
