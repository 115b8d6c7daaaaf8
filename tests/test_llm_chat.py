"""``llm.chat`` against a fake OpenAI-compatible server, through real ``skillrun serve``
processes: streamed chunks become ``step_delta`` text, usage comes from the last chunk,
429 and 5xx are retried (after ``Retry-After``), a broken or endless stream fails the
step with a clear kind, a cancel closes the upstream request at once, and the key
never shows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import httpx
import pytest
from conftest import Server
from fake_llm import FakeLLM, Reply
from llm_util import KEY, assert_sequences, chat_skill, checked, deltas, joined, serve, stream, terminal
from sse_util import parse_sse

SECRET = "sk-test-SECRET-0123456789abcdef"


def llm_env(fake: FakeLLM, **more: str) -> dict[str, str]:
    return {"SKILLRUN_LLM_BASE_URL": fake.base_url, "SKILLRUN_LLM_API_KEY": SECRET, **more}


def test_streamed_chunks_become_deltas_and_the_output_has_text_model_and_usage(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """Chunks "Hel", "lo, ", "wor", "ld" with usage (11, 7) in the last chunk: the deltas'
    joined text is "Hello, world", the output is {text, model, finish_reason, usage},
    and the request asked for a stream with usage, with the step's parameters."""
    with FakeLLM([Reply(["Hel", "lo, ", "wor", "ld"], usage=(11, 7), model="fake-model-2024")]) as fake:
        server = serve(server_factory, chat_skill(tmp_path), llm_env(fake))
        events = stream(server, "t.chat", {"question": "Greet the world."})
    end = terminal(events)
    assert end["type"] == "step_completed", end
    assert end["data"]["produced_output"] == {
        "text": "Hello, world", "model": "fake-model-2024", "finish_reason": "stop",
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }
    assert joined(deltas(events)) == "Hello, world"
    assert_sequences(deltas(events))
    body = fake.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "fake-model" and body["temperature"] == 0.5 and body["max_tokens"] == 64
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Greet the world."}]
    assert fake.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_a_429_with_retry_after_is_retried_no_sooner_than_it_says(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """A 429 with `Retry-After: 1` and a retry backoff of 10 ms: the step retries (kind
    upstream_rate_limited), waits at least 1 s, and then completes."""
    skills = chat_skill(tmp_path, "retry: { max_attempts: 2, backoff: { initial_ms: 10 } }")
    with FakeLLM([Reply(status=429, retry_after="1", error="slow down"), Reply(["ok"])]) as fake:
        server = serve(server_factory, skills, llm_env(fake))
        events = stream(server, "t.chat", {})
        gap = fake.requests[1].at - fake.requests[0].at
    retrying = [e for e in events if e["type"] == "step_retrying"]
    assert len(retrying) == 1 and retrying[0]["data"]["error"]["kind"] == "upstream_rate_limited"
    assert retrying[0]["data"]["delay_ms"] >= 1000
    assert gap >= 1.0, gap
    assert terminal(events)["data"]["produced_output"]["text"] == "ok"


def test_a_500_is_retried_and_fails_as_upstream_unavailable_without_retry(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """A 500: with `retry` the next attempt completes; without, the step fails with kind
    upstream_unavailable and the run fails (never the server: it still answers)."""
    retried = chat_skill(tmp_path, "retry: { max_attempts: 2, backoff: { initial_ms: 10 } }", "retried")
    with FakeLLM([Reply(status=500), Reply(["fine"])]) as fake:
        events = stream(serve(server_factory, retried, llm_env(fake)), "t.chat", {})
    assert [e["data"]["error"]["kind"] for e in events if e["type"] == "step_retrying"] == ["upstream_unavailable"]
    assert terminal(events)["data"]["produced_output"]["text"] == "fine"
    with FakeLLM([Reply(status=500, error="boom")]) as fake:
        server = serve(server_factory, chat_skill(tmp_path), llm_env(fake))
        events = stream(server, "t.chat", {})
        assert httpx.get(server.url + "/v1/health/live").status_code == 200
    end = terminal(events)
    assert end["type"] == "step_failed" and end["data"]["error"]["kind"] == "upstream_unavailable"
    assert "500" in end["data"]["error"]["message"] and "boom" in end["data"]["error"]["message"]
    assert events[-1]["status"] == "failed"


def test_a_stream_cut_in_the_middle_fails_the_step_with_upstream_protocol(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """The fake closes the connection after 3 of 6 chunks (no [DONE]): step_failed with
    kind upstream_protocol; the deltas already written stay in the log, in order."""
    with FakeLLM([Reply(["a", "b", "c", "d", "e", "f"], cut_after=3, pace_s=0.05)]) as fake:
        events = stream(serve(server_factory, chat_skill(tmp_path), llm_env(fake)), "t.chat", {})
    end = terminal(events)
    assert end["type"] == "step_failed" and end["data"]["error"]["kind"] == "upstream_protocol", end
    assert joined(deltas(events)) == "abc"


def test_a_malformed_stream_fails_the_step_with_upstream_protocol(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """`data: {not json` and then a chunk whose choices is a string: each fails its step
    with kind upstream_protocol and a message saying what was wrong."""
    skills = chat_skill(tmp_path)
    with FakeLLM([Reply(raw=["data: {not json\n\n"]), Reply(raw=['data: {"choices": "x"}\n\n'])]) as fake:
        server = serve(server_factory, skills, llm_env(fake))
        first, second = stream(server, "t.chat", {}), stream(server, "t.chat", {})
    for events, what in ((first, "not JSON"), (second, "choices")):
        error = terminal(events)["data"]["error"]
        assert error["kind"] == "upstream_protocol" and what in error["message"], error


def test_a_never_ending_stream_times_out_and_the_upstream_request_is_closed(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """A stream that never sends [DONE] and a step `timeout: 1s`: step_failed with kind
    timeout, and the fake sees the connection closed within 1 s of the deadline."""
    with FakeLLM([Reply(["x"], forever=True)]) as fake:
        events = stream(serve(server_factory, chat_skill(tmp_path, "timeout: 1s"), llm_env(fake)), "t.chat", {})
        fake.wait_for(lambda: fake.requests[0].disconnected_at is not None, timeout=2)
        open_for = fake.requests[0].disconnected_at - fake.requests[0].at  # type: ignore[operator]
    end = terminal(events)
    assert end["type"] == "step_failed" and end["data"]["error"]["kind"] == "timeout", end
    assert open_for < 2.0, open_for
    assert deltas(events) and set(joined(deltas(events))) <= {"x", "."}


def test_a_cancel_mid_stream_closes_the_upstream_request_within_a_second(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """POST /cancel while the model streams forever: the fake sees its client go away
    within 1 s, and the run ends cancelled."""
    with FakeLLM([Reply(["x"], forever=True)]) as fake:
        server = serve(server_factory, chat_skill(tmp_path), llm_env(fake))
        with httpx.Client(base_url=server.url, headers=KEY, timeout=30) as c:
            run_id = c.post("/v1/skills/t.chat/execute/async", json={"inputs": {}}).json()["run_id"]
            fake.wait_for(lambda: bool(fake.requests))
            time.sleep(0.3)  # mid-stream
            cancelled_at = time.monotonic()
            assert c.post(f"/v1/runs/{run_id}/cancel").status_code == 202
            fake.wait_for(lambda: fake.requests[0].disconnected_at is not None, timeout=5)
            closed_after = fake.requests[0].disconnected_at - cancelled_at  # type: ignore[operator]
            body = c.get(f"/v1/runs/{run_id}/events").text
    assert closed_after < 1.0, closed_after
    events = checked([dict(f.json) for f in parse_sse(body)[0]])
    assert events[-1]["status"] == "cancelled"


def test_without_an_endpoint_the_step_fails_unconfigured_saying_what_to_set(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """No SKILLRUN_LLM_BASE_URL: step_failed with kind unconfigured whose message names
    SKILLRUN_LLM_BASE_URL; demo.chat answers from its context through its fallback."""
    server = serve(server_factory, chat_skill(tmp_path), {"SKILLRUN_LLM_BASE_URL": ""})
    error = terminal(stream(server, "t.chat", {}))["data"]["error"]
    assert error["kind"] == "unconfigured" and "SKILLRUN_LLM_BASE_URL" in error["message"]
    events = stream(server, "demo.chat", {"question": "What do cats eat?",
                                          "context": "Dogs bark. Cats eat fish and mice. The sky is blue."})
    assert events[-1]["status"] == "completed" and events[-1]["outputs"] == {"answer": "Cats eat fish and mice."}
    assert [e["type"] for e in events if e.get("step_id") == "answer"] == [
        "step_start", "step_fallback", "step_delta", "step_completed"]
    assert deltas(events)[0]["data"]["attempt"] == 2  # the attempt after the failed one
    assert joined(deltas(events)) == "Cats eat fish and mice."


def test_demo_chat_streams_the_models_answer_when_one_is_configured(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """demo.chat with an endpoint: the answer is the model's, streamed as deltas, and the
    question and context reach the model."""
    with FakeLLM([Reply(["Fish", " and mice."])]) as fake:
        server = serve(server_factory, None, llm_env(fake))
        events = stream(server, "demo.chat", {"question": "What do cats eat?", "context": "Cats eat fish."})
    assert events[-1]["outputs"] == {"answer": "Fish and mice."}
    assert joined(deltas(events)) == "Fish and mice."
    asked = fake.requests[0].body["messages"][-1]["content"]
    assert "What do cats eat?" in asked and "Cats eat fish." in asked


def test_the_api_key_is_never_in_an_event_an_error_or_the_log(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """The endpoint answers 401 with an error that echoes the key ("Incorrect API key
    provided: sk-test-SECRET-..."): the step fails with kind upstream_status and a hint
    to check SKILLRUN_LLM_API_KEY, and the key appears in no event and no log line."""
    with FakeLLM([Reply(status=401, error=f"Incorrect API key provided: {SECRET}")]) as fake:
        server = serve(server_factory, chat_skill(tmp_path), {**llm_env(fake), "SKILLRUN_LOG_FORMAT": "json"})
        with httpx.Client(timeout=30) as c:
            raw = c.post(f"{server.url}/v1/skills/t.chat/execute/stream", json={"inputs": {}}, headers=KEY).text
    error = terminal(checked([dict(f.json) for f in parse_sse(raw)[0]]))["data"]["error"]
    assert error["kind"] == "upstream_status" and "SKILLRUN_LLM_API_KEY" in error["message"], error
    assert SECRET not in raw
    assert SECRET not in server.log()


def test_token_usage_goes_into_the_llm_tokens_counter(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    """Two runs whose model reports usage (11, 7) in its last chunk: /metrics counts
    skillrun_llm_tokens_total 22 input and 14 output tokens."""
    with FakeLLM([Reply(["hi"], usage=(11, 7))]) as fake:
        server = serve(server_factory, chat_skill(tmp_path), llm_env(fake))
        stream(server, "t.chat", {})
        stream(server, "t.chat", {})
        metrics = httpx.get(server.url + "/metrics", headers=KEY).text
    assert 'skillrun_llm_tokens_total{type="input"} 22.0' in metrics, metrics
    assert 'skillrun_llm_tokens_total{type="output"} 14.0' in metrics


@pytest.mark.anyio
async def test_token_usage_goes_on_the_steps_attempt_span() -> None:
    """With tracing on, the `execute_tool llm.chat` span of the call carries the model
    and usage (11 input, 7 output tokens) the last chunk reported."""
    from conftest import asgi_client, make_settings
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from skillrun.http.app import create_app
    from skillrun.observe.tracing import Tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with FakeLLM([Reply(["hi"], usage=(11, 7), model="fake-model-9")]) as fake:
        app = create_app(make_settings(llm_base_url=fake.base_url), tracing=Tracing(provider))
        async with asgi_client(app) as client:
            r = await client.post("/v1/skills/demo.chat/execute", json={"inputs": {"question": "q"}})
            assert r.status_code == 200 and r.json()["outputs"] == {"answer": "hi"}, r.text
    span = next(s for s in exporter.get_finished_spans() if s.name == "execute_tool llm.chat")
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == 11 and attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.response.model"] == "fake-model-9"
