"""``http.request`` against a local server it is explicitly allowed to reach, and SSRF refusals.

Refusals happen after resolution and before any connection: the refused
addresses below (private, link-local, metadata) are never contacted.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from engine_util import engine_for, run, skill
from skillrun.capabilities import HttpPolicy, builtin_registry
from skillrun.capabilities.http import make_capability, refusal

pytestmark = pytest.mark.anyio


PAGE = """<!doctype html><html><head><title>River &amp; valley</title>
<style>body { color: red }</style><script>var secret = "do not summarise";</script></head>
<body><nav><a href="/">Home</a></nav><h1>The valley</h1>
<p>The river floods the valley every spring.</p><p>Farmers plant rice when the river water recedes.</p>
<p>The valley is famous for its rice &amp; its river festivals.</p><noscript>Enable JavaScript.</noscript>
</body></html>"""


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json", extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/json"):
            self._send(200, json.dumps({"hello": "world", "path": self.path}).encode())
        elif self.path == "/big":
            self._send(200, b"x" * 5000, "text/plain")
        elif self.path == "/big-undeclared":  # no content-length: the body ends with the connection
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(b"x" * 5000)
        elif self.path == "/host":
            self._send(200, json.dumps({"host": self.headers.get("host")}).encode())
        elif self.path == "/page":
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif self.path == "/slow":
            time.sleep(2)
            self._send(200, b"{}")
        elif self.path == "/error":
            self._send(503, b"busy", "text/plain")
        elif self.path == "/redirect-loopback":
            port = self.server.server_address[1]
            self._send(302, b"", "text/plain", {"location": f"http://127.0.0.1:{port}/json"})
        else:
            self._send(404, b"no", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self._send(201, json.dumps({"got": json.loads(body)}).encode())


@pytest.fixture(scope="module")
def local() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _cap(*allow: str) -> Any:
    return make_capability(HttpPolicy(allow)).fn


async def test_get_json_from_an_allowed_local_server(local: str) -> None:
    out = await _cap("127.0.0.1")({"url": local + "/json?a=1", "query": {"b": "2"}})
    assert out["status"] == 200
    assert out["json"] == {"hello": "world", "path": "/json?a=1&b=2"}
    assert out["headers"]["content-type"] == "application/json"


async def test_post_json_body(local: str) -> None:
    out = await _cap("127.0.0.0/8")({"url": local + "/echo", "method": "POST", "json": {"x": [1, 2]}})
    assert out["status"] == 201 and out["json"] == {"got": {"x": [1, 2]}}


async def test_allowing_by_host_name(local: str) -> None:
    port = local.rsplit(":", 1)[1]
    out = await _cap("localhost")({"url": f"http://localhost:{port}/json"})
    assert out["status"] == 200


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://127.0.0.1:{port}/json", "loopback"),
        ("http://localhost:{port}/json", "loopback"),  # refused after resolving the name
        ("http://[::1]:{port}/json", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/json", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://169.254.10.10/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://0.0.0.0:{port}/", "unspecified"),
        ("http://100.64.0.1/", "public"),  # shared address space: not public
    ],
)
async def test_non_public_addresses_are_refused_unless_allowed(local: str, url: str, why: str) -> None:
    from skillrun.engine import CapabilityError

    port = local.rsplit(":", 1)[1]
    with pytest.raises(CapabilityError) as info:
        await _cap()({"url": url.format(port=port), "timeout_ms": 500})
    assert info.value.kind == "http_refused"
    assert why in str(info.value) and "SKILLRUN_HTTP_ALLOW" in str(info.value)


def test_refusal_classifies_addresses() -> None:
    import ipaddress

    assert refusal(ipaddress.ip_address("8.8.8.8")) is None
    assert refusal(ipaddress.ip_address("169.254.169.254")) == "a cloud metadata address"
    assert refusal(ipaddress.ip_address("fd00:ec2::254")) == "a cloud metadata address"
    assert refusal(ipaddress.ip_address("::ffff:10.0.0.1")) == "a private address"


async def test_a_redirect_to_a_refused_address_is_refused(local: str) -> None:
    from skillrun.engine import CapabilityError

    port = local.rsplit(":", 1)[1]
    cap = _cap("localhost")  # the name is allowed; the address 127.0.0.1 is not
    with pytest.raises(CapabilityError) as info:
        await cap({"url": f"http://localhost:{port}/redirect-loopback", "follow_redirects": True})
    assert info.value.kind == "http_refused" and "127.0.0.1" in str(info.value)


async def test_response_size_limit(local: str) -> None:
    from skillrun.engine import CapabilityError

    with pytest.raises(CapabilityError) as info:
        await _cap("127.0.0.1")({"url": local + "/big", "max_bytes": 100})
    assert info.value.kind == "http_too_large"


async def test_response_size_limit_without_a_declared_length(local: str) -> None:
    from skillrun.engine import CapabilityError

    with pytest.raises(CapabilityError) as info:
        await _cap("127.0.0.1")({"url": local + "/big-undeclared", "max_bytes": 100})
    assert info.value.kind == "http_too_large" and "larger than 100 bytes" in str(info.value)
    out = await _cap("127.0.0.1")({"url": local + "/big-undeclared", "max_bytes": 5000})
    assert len(out["text"]) == 5000


async def test_the_request_goes_to_the_checked_address_not_to_a_second_lookup(local: str) -> None:
    """DNS rebinding: the name is resolved once, by the policy; the connection uses that answer."""
    port = int(local.rsplit(":", 1)[1])
    calls: list[tuple[str, int]] = []

    class Pinned(HttpPolicy):
        async def resolve(self, host: str, port: int) -> str:
            calls.append((host, port))
            return await super().resolve("127.0.0.1", port)

    # "rebind.invalid" cannot be resolved by anyone: only the checked answer can be used.
    out = await make_capability(Pinned(["127.0.0.1"])).fn({"url": f"http://rebind.invalid:{port}/host"})
    assert out["json"] == {"host": f"rebind.invalid:{port}"}  # the name travels in Host
    assert out["url"] == f"http://rebind.invalid:{port}/host"
    assert calls == [("rebind.invalid", port)]


async def test_error_status_fails_unless_accepted(local: str) -> None:
    from skillrun.engine import CapabilityError

    with pytest.raises(CapabilityError) as info:
        await _cap("127.0.0.1")({"url": local + "/error"})
    assert info.value.kind == "http_status" and "503" in str(info.value)
    out = await _cap("127.0.0.1")({"url": local + "/error", "fail_on_status": False})
    assert out["status"] == 503 and out["text"] == "busy"


async def test_own_timeout(local: str) -> None:
    from skillrun.engine import CapabilityError

    with pytest.raises(CapabilityError) as info:
        await _cap("127.0.0.1")({"url": local + "/slow", "timeout_ms": 100})
    assert info.value.kind == "timeout"


async def test_step_timeout_cancels_the_request_and_leaves_no_task(local: str) -> None:
    reg = builtin_registry(HttpPolicy(["127.0.0.1"]))
    s = skill(
        f"""
        id: h
        version: "1"
        steps:
          - {{id: call, uses: http.request, timeout: 100ms, input: {{url: "{local}/slow"}}}}
        """,
        reg,
    )
    before = asyncio.all_tasks()
    t0 = time.perf_counter()
    outcome, _, _ = await run(engine_for(s, registry=reg), s)
    assert time.perf_counter() - t0 < 1.0
    assert outcome.error is not None and outcome.error["kind"] == "timeout"
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


async def test_http_step_in_a_skill_with_retry_on_refusal_not_retried(local: str) -> None:
    reg = builtin_registry(HttpPolicy([]))
    s = skill(
        f"""
        id: h2
        version: "1"
        steps:
          - id: call
            uses: http.request
            retry: {{max_attempts: 3, backoff: {{initial_ms: 1}}, on: [http_error, http_status]}}
            input: {{url: "{local}/json"}}
        """,
        reg,
    )
    outcome, rec, _ = await run(engine_for(s, registry=reg), s)
    assert rec.types("call") == ["step_start", "step_failed"]
    assert outcome.error is not None and outcome.error["kind"] == "http_refused"


async def test_web_summarize_summarises_the_visible_text_of_an_html_page(local: str) -> None:
    from skillrun.engine import load_skills
    from skillrun.settings import BUNDLED_SKILLS

    reg = builtin_registry(HttpPolicy(["127.0.0.1"]))
    catalog, problems = load_skills([BUNDLED_SKILLS], reg)
    assert problems == []
    web = catalog.get("web.summarize")
    assert web is not None
    outcome, rec, _ = await run(engine_for(*catalog.all(), registry=reg), web, {"url": local + "/page", "max_sentences": 2})
    assert outcome.status == "completed", outcome.error
    assert outcome.outputs["title"] == "River & valley"
    text = rec.of("step_completed", "extract")[0]["data"]["produced_output"]["text"]
    assert text.splitlines()[-1] == "The valley is famous for its rice & its river festivals."
    summary = outcome.outputs["summary"]
    for leaked in ("<", "&amp;", "secret", "color", "JavaScript"):
        assert leaked not in summary and leaked not in text, leaked
    assert "river" in outcome.outputs["keywords"] and "var" not in outcome.outputs["keywords"]


async def test_from_html_passes_plain_text_through() -> None:
    cap = builtin_registry().get("text.from_html")
    assert cap is not None
    assert await cap.fn({"text": "a <b> c", "content_type": "text/plain"}) == {"text": "a <b> c", "title": ""}


async def test_default_policy_comes_from_the_environment(local: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLRUN_HTTP_ALLOW", "10.0.0.0/8, 127.0.0.1")
    out = await make_capability().fn({"url": local + "/json"})
    assert out["status"] == 200


async def test_public_off_refuses_everything_not_allowed_without_resolving() -> None:
    """Only ``resolve`` is called here: it decides, it never connects."""
    from skillrun.capabilities.http import HttpRefused

    strict = HttpPolicy(["127.0.0.1", "localhost"], public=False)
    with pytest.raises(HttpRefused, match="not allowed while SKILLRUN_HTTP_PUBLIC is off"):
        await strict.resolve("8.8.8.8", 80)
    with pytest.raises(HttpRefused, match="is not in SKILLRUN_HTTP_ALLOW and SKILLRUN_HTTP_PUBLIC is off"):
        await strict.resolve("example.com", 443)
    assert await strict.resolve("127.0.0.1", 80) == "127.0.0.1"
    assert await strict.resolve("localhost", 80) in ("127.0.0.1", "::1")
    assert await HttpPolicy([]).resolve("8.8.8.8", 80) == "8.8.8.8"  # public allowed by default


def test_settings_read_the_http_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from skillrun.settings import Settings

    monkeypatch.setenv("SKILLRUN_HTTP_ALLOW", "10.0.0.0/8,internal.example")
    monkeypatch.setenv("SKILLRUN_HTTP_PUBLIC", "0")
    monkeypatch.setenv("SKILLRUN_MAX_PARALLEL", "7")
    s = Settings.from_env()
    assert (s.http_allow, s.http_public, s.max_parallel) == (["10.0.0.0/8", "internal.example"], False, 7)
