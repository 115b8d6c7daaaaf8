"""Issue 15: ``http.request`` sends an ``Idempotency-Key`` derived from run, step and
item, the same for every attempt and after a resume, so a receiver can drop a repeated
call (a step in flight at a crash runs again: at-least-once)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from engine_util import Recorder, engine_for, skill
from skillrun.capabilities import HttpPolicy, builtin_registry

pytestmark = pytest.mark.anyio


class _Receiver(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        key = self.headers.get("idempotency-key")
        self.server.seen.append((self.command, self.path, key))  # type: ignore[attr-defined]
        first = self.path == "/flaky" and sum(1 for s in self.server.seen if s[1] == "/flaky") == 1  # type: ignore[attr-defined]
        self.send_response(503 if first else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, str, str | None]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    server.shutdown()


def _skill(url: str, reg: Any) -> Any:
    return skill(
        f"""
        id: calls
        version: "1"
        steps:
          - id: pay
            uses: http.request
            retry: {{max_attempts: 2, backoff: {{initial_ms: 1}}, on: [http_status]}}
            input: {{url: "{url}/flaky", method: POST, json: {{amount: 1}}}}
          - id: each
            uses: http.request
            foreach: "range(2)"
            input: {{url: "{url}/item", method: PUT, json: {{i: "${{item}}"}}}}
          - id: own
            uses: http.request
            input: {{url: "{url}/own", method: POST, headers: {{Idempotency-Key: mine}}}}
          - id: read
            uses: http.request
            input: {{url: "{url}/read"}}
        """,
        reg,
    )


async def _keys(url: str, run_key: str, seen: list[tuple[str, str, str | None]]) -> dict[str, list[str | None]]:
    reg = builtin_registry(HttpPolicy(["127.0.0.1"]))
    s = _skill(url, reg)
    outcome = await engine_for(s, registry=reg).run(s, {}, Recorder(), channel="http", run_key=run_key)
    assert outcome.status == "completed", outcome.error
    out: dict[str, list[str | None]] = {}
    for _, path, key in seen:
        out.setdefault(path, []).append(key)
    seen.clear()
    return out


async def test_each_step_instance_sends_one_key_across_its_attempts(receiver: Any) -> None:
    url, seen = receiver
    keys = await _keys(url, "run_a", seen)
    assert len(keys["/flaky"]) == 2 and keys["/flaky"][0] == keys["/flaky"][1] is not None  # a retry: the same key
    assert len(set(keys["/item"])) == 2 and None not in keys["/item"]  # each item its own
    assert keys["/flaky"][0] not in keys["/item"]
    assert keys["/own"] == ["mine"]  # a step's own key wins
    assert keys["/read"] == [None]  # GET is safe to repeat: no key
    again = await _keys(url, "run_a", seen)  # the same run again (as after a resume): the same keys
    assert again["/flaky"][0] == keys["/flaky"][0] and sorted(again["/item"]) == sorted(keys["/item"])  # type: ignore[type-var]
    other = await _keys(url, "run_b", seen)  # another run: other keys
    assert other["/flaky"][0] != keys["/flaky"][0]
