"""What a generator cannot find: live streams, resume, viewers, cancel, isolation, rate limits.

Each check raises ``RuleViolation`` naming the rule it found broken. Streams are read
on a thread that stamps every chunk's arrival, so the checks see timing (incremental
delivery, a stream that never closes) without trusting the server to end anything.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import httpx

from .sse import Frame, RuleViolation, check_delta_resume, check_frames, check_order, check_stream, parse

EVENTS_PATH = "/v1/runs/{run_id}/events"


@dataclass
class Target:
    """The deployment under test and what to run on it."""

    url: str
    key: str
    skill: str
    inputs: dict[str, Any]
    validate: Callable[[Any], None] | None = None
    other_key: str | None = None
    close_timeout_s: float = 5.0
    stream_timeout_s: float = 120.0

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"x-api-key": key or self.key, **extra}


@dataclass
class Received:
    """One streamed answer: its status, headers, text, and when each event arrived."""

    status: int
    headers: httpx.Headers
    text: str = ""
    arrivals: list[float] = field(default_factory=list)  # monotonic time of each frame's end
    closed_after_done_s: float | None = None  # None: still open after close_timeout_s


def read_stream(client: httpx.Client, method: str, url: str, target: Target, **kwargs: Any) -> Received:
    """Reads an SSE answer on a thread; stops ``close_timeout_s`` after ``done`` if the server does not."""
    chunks: queue.Queue[tuple[float, bytes | None]] = queue.Queue()
    started = threading.Event()
    box: dict[str, Any] = {}

    def pump() -> None:
        try:
            with client.stream(method, url, **kwargs) as response:
                box["response"] = response
                started.set()
                for chunk in response.iter_raw():
                    chunks.put((time.monotonic(), chunk))
        except Exception as exc:  # noqa: BLE001 - reported to the reader below
            box["error"] = exc
        finally:
            started.set()
            chunks.put((time.monotonic(), None))

    threading.Thread(target=pump, daemon=True).start()
    started.wait(target.stream_timeout_s)
    if "response" not in box:
        raise RuleViolation("sse.done-last", f"{method} {url}: no answer ({box.get('error')!r})")
    response: httpx.Response = box["response"]
    out = Received(response.status_code, response.headers)
    buffer = ""
    done_at: float | None = None
    deadline = time.monotonic() + target.stream_timeout_s
    while True:
        wait = (done_at + target.close_timeout_s if done_at else deadline) - time.monotonic()
        try:
            at, chunk = chunks.get(timeout=max(wait, 0.0))
        except queue.Empty:
            break  # open past done (or past the whole budget)
        if chunk is None:
            if done_at is not None:
                out.closed_after_done_s = at - done_at
            break
        buffer += chunk.decode("utf-8", "replace")
        frames_now = len(parse(buffer).frames)
        out.arrivals += [at] * (frames_now - len(out.arrivals))
        if done_at is None and "event: done" in buffer:
            done_at = at
    out.text = buffer
    return out


def _event_times(events: list[dict[str, Any]]) -> list[float]:
    # `done` carries the result rather than an envelope timestamp.
    return [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp() for e in events if "timestamp" in e]


class Skip(Exception):
    """The check cannot judge this deployment or skill; the message says why."""


@dataclass
class LiveStream:
    run_id: str
    events: list[dict[str, Any]]
    arrivals: list[float]


def check_live_stream(client: httpx.Client, target: Target) -> LiveStream:
    """One ``/execute/stream``: every stream rule and closing after done."""
    trace = f"conformance-{uuid.uuid4().hex[:12]}"
    got = read_stream(client, "POST", f"{target.url}/v1/skills/{target.skill}/execute/stream", target,
                      headers=target.headers(**{"x-trace-id": trace}), json={"inputs": target.inputs})
    if got.status != 200:
        raise RuleViolation("sse.done-last", f"/execute/stream answered {got.status}: {got.text[:300]}")
    events = check_stream(got.text, header_trace=got.headers.get("x-trace-id"), sent_trace=trace,
                          validate=target.validate)
    if got.closed_after_done_s is None:
        raise RuleViolation("sse.closes-after-done", f"the response was still open {target.close_timeout_s} s after done")
    return LiveStream(got.headers.get("x-run-id") or str(events[0].get("run_id")), events, got.arrivals)


def check_incremental(live: LiveStream) -> None:
    # The server stamps each event; if the run took time, the client must have seen
    # the events over (most of) that time, not all at once when a proxy let go.
    produced = _event_times(live.events)
    arrivals = live.arrivals[: len(produced)]
    span = produced[-1] - produced[0]
    if span < 0.5:
        raise Skip(f"the run took {span:.2f} s: too short to tell a buffered stream (use a longer --skill run)")
    seen = arrivals[-1] - arrivals[0]
    if seen < span / 2:
        raise RuleViolation("stream.incremental",
                            f"events produced over {span:.2f} s arrived within {seen:.2f} s: the stream is buffered")


def _frames(client: httpx.Client, target: Target, run_id: str, cursor: int | None) -> list[Frame]:
    headers = target.headers() if cursor is None else target.headers(**{"Last-Event-ID": str(cursor)})
    got = read_stream(client, "GET", target.url + EVENTS_PATH.format(run_id=run_id), target, headers=headers)
    if got.status != 200:
        raise RuleViolation("resume.every-cut", f"events after {cursor} answered {got.status}: {got.text[:300]}")
    # Order is judged by the caller: a repeat after a cut is a resume fault, not a stream's.
    return parse(got.text).frames


def check_resume(client: httpx.Client, target: Target, run_id: str) -> None:
    """Resuming after every event id gives exactly the rest of the log."""
    frames = _frames(client, target, run_id, None)
    check_frames(frames)
    full = [(f.id, f.data) for f in frames]
    for n, (cut, _data) in enumerate(full):
        rest = [(f.id, f.data) for f in _frames(client, target, run_id, int(cut or 0))]
        expected = full[n + 1:]
        if rest != expected:
            lost = [i for i, d in expected if (i, d) not in rest]
            repeated = [i for i, d in rest if (i, d) not in expected or rest.count((i, d)) > 1]
            raise RuleViolation("resume.every-cut", f"after Last-Event-ID {cut}: lost {lost[:10]}, repeated "
                                f"or changed {repeated[:10]} ({len(rest)} events, {len(expected)} expected)")


def _start_async(client: httpx.Client, target: Target, inputs: dict[str, Any]) -> str:
    r = client.post(f"{target.url}/v1/skills/{target.skill}/execute/async", headers=target.headers(),
                    json={"inputs": inputs})
    if r.status_code != 202:
        raise RuleViolation("runs.second-viewer", f"/execute/async answered {r.status_code}: {r.text[:300]}")
    return str(r.json()["run_id"])


def check_second_viewer(client: httpx.Client, target: Target) -> None:
    """Two viewers of one running run see the same complete stream."""
    run_id = _start_async(client, target, target.inputs)
    results: list[Received | BaseException] = []

    def view() -> None:
        try:
            results.append(read_stream(client, "GET", target.url + EVENTS_PATH.format(run_id=run_id), target,
                                       headers=target.headers()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            results.append(exc)

    threads = [threading.Thread(target=view) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(target.stream_timeout_s)
    texts = [r.text for r in results if isinstance(r, Received)]
    if len(texts) != 2:
        raise RuleViolation("runs.second-viewer", f"a viewer failed: {results}")
    views = [[(f.id, f.data) for f in parse(t).frames] for t in texts]
    if views[0] != views[1] or not views[0]:
        raise RuleViolation("runs.second-viewer", f"the viewers saw {len(views[0])} and {len(views[1])} events, not the same")
    check_stream(texts[0], header_trace=str(parse(texts[0]).frames[0].json.get("trace_id")), validate=target.validate)


def check_cancel(client: httpx.Client, target: Target, long_inputs: dict[str, Any]) -> None:
    """A cancelled run ends: its log closes with done, status cancelled."""
    run_id = _start_async(client, target, long_inputs)
    r = client.post(f"{target.url}/v1/runs/{run_id}/cancel", headers=target.headers())
    if r.status_code != 202:
        raise RuleViolation("runs.cancel", f"cancel answered {r.status_code}: {r.text[:300]}")
    got = read_stream(client, "GET", target.url + EVENTS_PATH.format(run_id=run_id), target, headers=target.headers())
    events = [f.json for f in parse(got.text).frames]
    if not events or events[-1].get("type") != "done" or events[-1].get("status") != "cancelled":
        last = events[-1] if events else None
        raise RuleViolation("runs.cancel", f"the cancelled run's last event is {last}")


def check_isolation(client: httpx.Client, target: Target, run_id: str) -> None:
    """Another key gets 404 for the run, its events and its cancel."""
    assert target.other_key is not None
    other = target.headers(target.other_key)
    for method, path in (("GET", f"/v1/runs/{run_id}"), ("GET", EVENTS_PATH.format(run_id=run_id)),
                         ("POST", f"/v1/runs/{run_id}/cancel")):
        r = client.request(method, target.url + path, headers=other)
        if r.status_code != 404:
            raise RuleViolation("runs.owner-isolation", f"{method} {path} with the other key answered {r.status_code}")
    listed = client.get(f"{target.url}/v1/runs", headers=other, params={"limit": 100})
    if run_id in listed.text:
        raise RuleViolation("runs.owner-isolation", "the other key's GET /v1/runs lists the run")


def check_rate_limit_headers(client: httpx.Client, target: Target) -> None:
    r = client.get(f"{target.url}/v1/skills", headers=target.headers())
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        value = r.headers.get(name)
        if value is None or not value.isdigit():
            raise RuleViolation("ratelimit.headers", f"GET /v1/skills: {name} is {value!r}")


def check_problems(client: httpx.Client, target: Target) -> None:
    """Errors before the first byte: a 4xx with application/problem+json, never a stream."""
    base = f"{target.url}/v1/skills/{target.skill}/execute/stream"
    cases = [
        ("no key", base, {}, {"inputs": target.inputs}),
        ("inputs not an object", base, target.headers(), {"inputs": "not an object"}),
        ("unknown skill", f"{target.url}/v1/skills/no.such.skill-{uuid.uuid4().hex[:6]}/execute/stream",
         target.headers(), {"inputs": {}}),
    ]
    for name, url, headers, body in cases:
        r = client.post(url, headers=headers, json=body)
        kind = r.headers.get("content-type", "")
        if not 400 <= r.status_code < 500 or not kind.startswith("application/problem+json"):
            raise RuleViolation("http.problem-json", f"{name}: {r.status_code} {kind}")


def _frames_until_delta(client: httpx.Client, target: Target, run_id: str, deltas: int) -> list[Frame]:
    """The run's events from the start up to and including its ``deltas``-th step_delta;
    then the connection is closed, as a client whose network drops would."""
    url = target.url + EVENTS_PATH.format(run_id=run_id)
    deadline = time.monotonic() + target.stream_timeout_s
    buffer = ""
    with client.stream("GET", url, headers=target.headers()) as response:
        if response.status_code != 200:
            raise RuleViolation("resume.deltas", f"the run's events answered {response.status_code}")
        for chunk in response.iter_text():
            buffer += chunk
            frames = parse(buffer).frames
            seen = [n for n, f in enumerate(frames) if f.event == "step_delta"]
            if len(seen) >= deltas:
                return frames[: seen[deltas - 1] + 1]
            if any(f.event == "done" for f in frames) or time.monotonic() > deadline:
                break
    raise Skip(f"the run streamed fewer than {deltas} step_delta events before it ended: nothing to cut in the middle of")


def check_deltas_live(client: httpx.Client, target: Target, cut_after: int) -> None:
    """A run that streams step_delta events: its log holds the order, numbering and shape
    rules, and a viewer cut right after its ``cut_after``-th delta, resuming with
    ``Last-Event-ID``, gets every delta once."""
    r = client.post(f"{target.url}/v1/skills/{target.skill}/execute/async", headers=target.headers(),
                    json={"inputs": target.inputs})
    if r.status_code != 202:
        raise RuleViolation("resume.deltas", f"/execute/async answered {r.status_code}: {r.text[:300]}")
    run_id = str(r.json()["run_id"])
    before = _frames_until_delta(client, target, run_id, cut_after)
    after = _frames(client, target, run_id, int(before[-1].id or 0))
    full = _frames(client, target, run_id, None)
    events = check_frames(full)
    for n, event in enumerate(events):
        if target.validate is not None:
            try:
                target.validate(event)
            except AssertionError as exc:
                raise RuleViolation("sse.event-schema", f"event #{n} ({event.get('type')}): {exc}") from None
    check_order(events)  # sse.step-lifecycle and the sse.delta-* rules
    check_delta_resume(full, before, after)
