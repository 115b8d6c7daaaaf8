"""Resume against a real server: cut a demo.ticker stream after every event in turn (and,
through a proxy, in the middle of every frame), resume with Last-Event-ID, and the
joined events equal the uncut run's, none lost or repeated."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Iterator

import httpx
import pytest

from conftest import API_KEY, Server
from sse_util import Frame, check_order, parse_sse

HEADERS = {"x-api-key": API_KEY}
BODY = {"inputs": {"steps": 5, "delay_ms": 30}}
STREAM = "/v1/skills/demo.ticker/execute/stream"


def _replay(base: str, run_id: str, last_event_id: int | None = None) -> list[Frame]:
    headers = dict(HEADERS)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    r = httpx.get(f"{base}/v1/runs/{run_id}/events", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return parse_sse(r.text)[0]


def _stream_until_cut(url: str, keep: int | None) -> tuple[str, str]:
    """Stream a new run; hang up after ``keep`` complete frames (or when the connection
    drops). Returns the run id and the text received."""
    text = ""
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", url + STREAM, json=BODY, headers=HEADERS) as r:
            assert r.status_code == 200
            run_id = r.headers["x-run-id"]
            try:
                for chunk in r.iter_text():
                    text += chunk
                    if keep is not None and len(parse_sse(text)[0]) >= keep:
                        break
            except httpx.RemoteProtocolError:
                pass  # the proxy dropped the connection mid-frame
    return run_id, text


def _same(a: list[Frame], b: list[Frame]) -> None:
    assert [(f.id, f.event, f.data) for f in a] == [(f.id, f.event, f.data) for f in b]


@pytest.fixture(scope="module")
def uncut(server: Server) -> list[Frame]:
    run_id, text = _stream_until_cut(server.url, None)
    frames = parse_sse(text)[0]
    check_order([f.json for f in frames])
    _same(frames, _replay(server.url, run_id))
    return frames


def test_resume_after_every_event_joins_to_the_uncut_run(server: Server, uncut: list[Frame]) -> None:
    n = len(uncut)
    assert n == 13  # skill_start, 5 x (step_start, step_completed), skill_completed, done
    for cut in range(1, n):
        run_id, text = _stream_until_cut(server.url, cut)
        head = parse_sse(text)[0][:cut]  # what the client had when it hung up
        assert [int(f.id) for f in head] == list(range(1, cut + 1))
        rest = _replay(server.url, run_id, last_event_id=cut)
        joined = head + rest
        # No loss, no repeat: ids 1..n once each, in order, same events as the uncut run.
        assert [int(f.id) for f in joined] == list(range(1, n + 1)), cut
        assert [f.event for f in joined] == [f.event for f in uncut]
        check_order([f.json for f in joined])
        assert joined[-1].json["status"] == "completed"  # the run went on without its client
        _same(joined, _replay(server.url, run_id))


class DroppingProxy:
    """A TCP proxy that closes a connection after forwarding ``budget`` bytes of the
    server's answer (None: never), so the client sees a frame cut in the middle."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.budget: int | None = None
        self.last_answer = b""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            budget = self.budget
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answer, args=(upstream, client, budget), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_RDWR)  # the client left: let the server see it
        except OSError:
            pass

    def _answer(self, upstream: socket.socket, client: socket.socket, budget: int | None) -> None:
        sent = bytearray()
        try:
            while data := upstream.recv(65536):
                if budget is not None and len(sent) + len(data) >= budget:
                    client.sendall(data[: budget - len(sent)])
                    sent += data[: budget - len(sent)]
                    break
                client.sendall(data)
                sent += data
                self.last_answer = bytes(sent)
        except OSError:
            pass
        finally:
            self.last_answer = bytes(sent)
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def proxy(server: Server) -> Iterator[DroppingProxy]:
    p = DroppingProxy(server.port)
    yield p
    p.close()


def _mid_frame_offsets(raw: bytes, n: int) -> list[int]:
    """Byte offsets in the middle of each frame of a raw (chunked) HTTP answer."""
    starts = [raw.index(f"id: {i}\n".encode()) for i in range(1, n + 1)]
    ends = starts[1:] + [len(raw)]
    return [s + (e - s) // 2 for s, e in zip(starts, ends)]


def test_resume_after_the_connection_drops_mid_frame(server: Server, proxy: DroppingProxy, uncut: list[Frame]) -> None:
    n = len(uncut)
    proxy.budget = None
    _stream_until_cut(f"http://127.0.0.1:{proxy.port}", None)
    time.sleep(0.2)
    offsets = _mid_frame_offsets(proxy.last_answer, n)
    mid_frame = 0
    for offset in offsets[:-1]:
        proxy.budget = offset
        run_id, text = _stream_until_cut(f"http://127.0.0.1:{proxy.port}", None)
        head = parse_sse(text)[0]  # a partial last frame is discarded, as WHATWG 9.2 says
        mid_frame += not text.endswith("\n\n")
        last = int(head[-1].id) if head else 0
        assert last < n, "the cut came too late to test anything"
        rest = _replay(server.url, run_id, last_event_id=last) if head else _replay(server.url, run_id)
        joined = head + rest
        assert [int(f.id) for f in joined] == list(range(1, n + 1)), offset
        check_order([f.json for f in joined])
        _same(joined, _replay(server.url, run_id))
    assert mid_frame >= n - 3, "most cuts must fall inside a frame"


def test_events_of_a_live_run_follow_it_to_done(server: Server) -> None:
    r = httpx.post(
        server.url + "/v1/skills/demo.ticker/execute/async",
        json={"inputs": {"steps": 4, "delay_ms": 100}},
        headers=HEADERS,
    )
    run_id = r.json()["run_id"]
    started = time.monotonic()
    frames = _replay(server.url, run_id)  # starts while the run is queued or running
    assert time.monotonic() - started > 0.25  # it waited for the events, live
    check_order([f.json for f in frames])
    assert frames[-1].json["status"] == "completed"


def _first_frames(base: str, body: dict[str, Any], keep: int) -> str:
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", base + STREAM, json=body, headers=HEADERS) as r:
            text = ""
            for chunk in r.iter_text():
                text += chunk
                if len(parse_sse(text)[0]) >= keep:
                    return r.headers["x-run-id"]
    raise AssertionError("stream ended early")


def _wait_finished(base: str, run_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{base}/v1/runs/{run_id}", headers=HEADERS).json()
        if run["finished_at"]:
            return run
        time.sleep(0.05)
    raise AssertionError(f"{run_id} did not finish")


def test_disconnect_ends_the_view_but_on_disconnect_cancel_ends_the_run(server: Server) -> None:
    keep_going = _first_frames(server.url, {"inputs": {"steps": 5, "delay_ms": 50}}, 3)
    cancel = _first_frames(
        server.url, {"inputs": {"steps": 200, "delay_ms": 50}, "options": {"on_disconnect": "cancel"}}, 3
    )
    assert _wait_finished(server.url, keep_going)["status"] == "completed"
    run = _wait_finished(server.url, cancel)
    assert run["status"] == "cancelled"
    frames = _replay(server.url, cancel)
    check_order([f.json for f in frames])
    assert frames[-1].json["status"] == "cancelled"


def test_events_of_an_idle_run_get_heartbeats_and_the_stream_headers(server_factory: Any) -> None:
    server = server_factory(env={"SKILLRUN_HEARTBEAT_S": "0.2"})
    r = httpx.post(server.url + "/v1/skills/demo.ticker/execute/async",
                   json={"inputs": {"steps": 1, "delay_ms": 1500}}, headers=HEADERS)
    run_id = r.json()["run_id"]
    with httpx.stream("GET", f"{server.url}/v1/runs/{run_id}/events", headers=HEADERS, timeout=30) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        assert events.headers["cache-control"] == "no-cache"
        assert events.headers["x-accel-buffering"] == "no"
        assert events.headers["x-run-id"] == run_id
        text = "".join(events.iter_text())
    frames, comments = parse_sse(text)
    assert comments.count("ping") >= 3  # 1.5 s inside one step, a ping every 0.2 s
    check_order([f.json for f in frames])
