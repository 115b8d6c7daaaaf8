"""``http.request`` against a local server it is explicitly allowed to reach, and SSRF refusals.

Refusals happen after resolution and before any connection: the refused
addresses below (private, link-local, metadata) are never contacted.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import threading
import time
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from conftest import API_KEY, Server
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
        self.server.hits[self.path] += 1  # type: ignore[attr-defined]
        special = _SPECIAL.get(self.path)
        if special is not None:
            special(self)
        elif self.path.startswith("/json"):
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


def _gzip(data: bytes | Iterator[bytes]) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [packer.compress(chunk) for chunk in ([data] if isinstance(data, bytes) else data)]
    return b"".join(parts) + packer.flush()


def _zeros(total: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    block = bytes(chunk)
    for _ in range(total // chunk):
        yield block


_BOMB: list[bytes] = []
_RANDOM = os.urandom(1000)


def _bomb_bytes() -> bytes:
    """The bomb: 200 MB of zeros, about 200 KB gzipped (built once, on first use)."""
    if not _BOMB:
        _BOMB.append(_gzip(_zeros(200 * 1024 * 1024)))
    return _BOMB[0]


def _bomb(h: _Handler) -> None:
    h._send(200, _bomb_bytes(), "text/plain", {"content-encoding": "gzip"})


def _redirect(to: str) -> Any:
    return lambda h: h._send(302, b"", "text/plain", {"location": to})


_SPECIAL: dict[str, Any] = {
    "/bomb": _bomb,
    "/headers": lambda h: h._send(200, json.dumps({k.lower(): v for k, v in h.headers.items()}).encode()),
    "/loop": _redirect("/loop"),
    "/to-file": _redirect("file:///etc/passwd"),
    "/to-ftp": _redirect("ftp://127.0.0.1/x"),
    "/deep-json": lambda h: h._send(200, b"[" * 100_000 + b"]" * 100_000),
    "/gzip-json": lambda h: h._send(
        200, _gzip(b'{"a": ') + _gzip(b'"' + b"b" * 300_000 + b'"}'), "application/json", {"content-encoding": "gzip"}
    ),  # two gzip members (RFC 1952 2.2), inflating to 300 KB
    "/deflate-raw": lambda h: h._send(200, zlib.compress(b"raw deflate " * 1000)[2:-4], "text/plain", {"content-encoding": "deflate"}),
    "/gzip-random": lambda h: h._send(200, _gzip(_RANDOM), "application/octet-stream", {"content-encoding": "gzip"}),
    "/br": lambda h: h._send(200, b"\x0b\x02\x80hi\x03", "text/plain", {"content-encoding": "br"}),
    "/credentials": lambda h: h._send(
        200,
        b"{}",
        "application/json",
        {
            "set-cookie": "session=s3cr3t; HttpOnly",
            "www-authenticate": 'Bearer realm="internal", error="invalid_token"',
            "proxy-authenticate": "Basic realm=proxy",
            "authorization": "Bearer leaked",
            "x-request-id": "r-1",
        },
    ),
}


@pytest.fixture(scope="module")
def local() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.hits = collections.Counter()  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _SERVERS[f"http://127.0.0.1:{server.server_address[1]}"] = server
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


_SERVERS: dict[str, ThreadingHTTPServer] = {}


def _hits(local: str, path: str) -> int:
    return int(_SERVERS[local].hits[path])  # type: ignore[attr-defined]


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


# ---------------------------------------------------------------- issue 10: hardening


def _fetch_skill(local: str, path: str, reg: Any, extra: str = "", retry: str = "") -> Any:
    return skill(
        f"""
        id: fetch
        version: "1"
        steps:
          - id: call
            uses: http.request
            {retry}
            input: {{url: "{local}{path}"{extra}}}
        """,
        reg,
    )


async def test_a_decompression_bomb_fails_too_large_within_bounded_memory(local: str) -> None:
    """Issue 10: a 200 KB gzip of 200 MB of zeros, fetched 6 times at once, took the server
    from 98 MB to 1.16 GB RSS: the whole first network chunk was inflated before the size
    check. Six steps with web.summarize's ``max_bytes: 2000000`` must each fail with
    ``http_too_large`` and allocate a few MB each, not hundreds."""
    reg = builtin_registry(HttpPolicy(["127.0.0.1"]))
    s = _fetch_skill(local, "/bomb", reg, ", max_bytes: 2000000")
    engine = engine_for(s, registry=reg)
    _bomb_bytes()  # built outside the measurement
    tracemalloc.start()
    try:
        results = await asyncio.gather(*(run(engine, s) for _ in range(6)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for outcome, _, _ in results:
        assert outcome.error is not None and outcome.error["kind"] == "http_too_large", outcome.error
        assert "larger than 2000000 bytes once decoded" in outcome.error["message"]
    # 6 bodies of at most 2 MB, plus 64 KB pieces; unbounded, each request inflated 64 MB at once.
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def _peak_rss_mb(pid: int) -> float:
    """The process's resident-set high-water mark (Linux ``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's peak RSS from /proc")
def test_a_decompression_bomb_leaves_a_real_servers_memory_bounded(local: str, server_factory: Callable[..., Server]) -> None:
    """Issue 10, as found: six ``web.summarize`` runs at once on a 200 KB gzip of 200 MB of
    zeros took the server from 98 MB to 1.16 GB RSS. Each run now fails ``http_too_large``
    and the server's peak RSS grows by tens of MB at most."""
    server = server_factory(env={"SKILLRUN_HTTP_ALLOW": "127.0.0.1"})
    headers = {"x-api-key": API_KEY}
    body = {"inputs": {"url": local + "/gzip-json"}}  # warm up: imports, first run, the bomb built
    assert httpx.post(server.url + "/v1/skills/web.summarize/execute", json=body, headers=headers, timeout=30).status_code == 200
    _bomb_bytes()
    before = _peak_rss_mb(server.proc.pid)

    async def six() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as client:
            body = {"inputs": {"url": local + "/bomb"}}
            return await asyncio.gather(*(client.post("/v1/skills/web.summarize/execute", json=body) for _ in range(6)))

    for r in asyncio.run(six()):
        assert r.status_code == 200 and r.json()["error"]["kind"] == "http_too_large", r.text
    grown = _peak_rss_mb(server.proc.pid) - before
    assert grown < 80, f"peak RSS grew by {grown:.0f} MB"


async def test_the_size_limit_applies_to_the_bytes_on_the_wire_too(local: str) -> None:
    """Issue 10: the limit applies to compressed bytes as well as decoded ones: 1,000 random
    bytes gzip to more than 1,000, so ``max_bytes: 1010`` refuses the wire bytes although
    the decoded body would fit."""
    from skillrun.engine import CapabilityError

    with pytest.raises(CapabilityError) as info:
        await _cap("127.0.0.1")({"url": local + "/gzip-random", "max_bytes": 1010})
    assert info.value.kind == "http_too_large" and "once decoded" not in str(info.value)
    out = await _cap("127.0.0.1")({"url": local + "/gzip-random", "max_bytes": 1100})
    assert out["text"].encode("utf-8", "surrogateescape") != b"" and out["headers"]["content-encoding"] == "gzip"


async def test_compressed_answers_are_still_decoded(local: str) -> None:
    """Bounded inflation keeps what httpx did: several gzip members, raw deflate."""
    out = await _cap("127.0.0.1")({"url": local + "/gzip-json"})
    assert out["json"] == {"a": "b" * 300_000}
    out = await _cap("127.0.0.1")({"url": local + "/deflate-raw"})
    assert out["text"] == "raw deflate " * 1000
    from skillrun.engine import CapabilityError

    with pytest.raises(CapabilityError) as info:  # not asked for, and not inflatable in bounded pieces here
        await _cap("127.0.0.1")({"url": local + "/br"})
    assert info.value.kind == "http_unsupported"


@pytest.mark.parametrize("step", [1, 7, 65536])
def test_inflating_in_bounded_pieces_gives_back_every_byte(step: int) -> None:
    """However the body is split into chunks (gzip members ending on a chunk boundary
    included), the pieces join to the original and none is larger than 64 KB."""
    from skillrun.capabilities.http import _PIECE, _Inflater

    original = b"first member " * 5000 + bytes(300_000) + b"second member" * 10
    body = _gzip(original[:65000]) + _gzip(original[65000:])
    inflater = _Inflater("gzip")
    pieces = [p for i in range(0, len(body), step) for p in inflater.feed(body[i : i + step])]
    assert b"".join(pieces) == original and max(map(len, pieces)) <= _PIECE


async def test_requests_ask_only_for_encodings_that_are_decoded_in_bounded_pieces(local: str) -> None:
    out = await _cap("127.0.0.1")({"url": local + "/headers"})
    assert out["json"]["accept-encoding"] == "gzip, deflate"
    out = await _cap("127.0.0.1")({"url": local + "/headers", "headers": {"Accept-Encoding": "identity"}})
    assert out["json"]["accept-encoding"] == "identity"


@pytest.mark.parametrize(
    "url, embedded",
    [
        ("http://[64:ff9b::7f00:1]:{port}/", "loopback"),  # NAT64 of 127.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata"),  # NAT64 of 169.254.169.254
        ("http://[64:ff9b:1::a00:1]/", "local-use NAT64"),  # RFC 8215 local-use: refused outright
        ("http://[::127.0.0.1]:{port}/", "loopback"),  # IPv4-compatible
        ("http://[::10.0.0.1]/", "private"),
        ("http://[::ffff:0:127.0.0.1]:{port}/", "loopback"),  # IPv4-translated (SIIT)
        ("http://[2002:7f00:1::1]:{port}/", "loopback"),  # 6to4 of 127.0.0.1
        ("http://[2002:a9fe:a9fe::]/", "cloud metadata"),  # 6to4 of 169.254.169.254
        ("http://[fec0::1]/", "site-local"),
    ],
)
async def test_ipv6_forms_embedding_internal_ipv4_are_refused(local: str, url: str, embedded: str) -> None:
    """Issue 10: IPv6 forms that embed an internal IPv4 address were reachable: NAT64
    ``64:ff9b::/96`` and ``64:ff9b:1::/48``, IPv4-compatible ``::a.b.c.d``,
    ``::ffff:0:a.b.c.d``, 6to4 ``2002::/16``, site-local ``fec0::/10``."""
    from skillrun.engine import CapabilityError

    port = local.rsplit(":", 1)[1]
    with pytest.raises(CapabilityError) as info:
        await _cap()({"url": url.format(port=port), "timeout_ms": 500})
    assert info.value.kind == "http_refused" and embedded in str(info.value)


def test_ipv6_forms_embedding_public_ipv4_are_judged_by_it() -> None:
    import ipaddress

    for public in ("64:ff9b::808:808", "2002:808:808::1", "::ffff:0:8.8.8.8", "::ffff:8.8.8.8"):
        assert refusal(ipaddress.ip_address(public)) is None, public
    assert refusal(ipaddress.ip_address("::ffff:0:a00:1")) == "a private address inside an IPv6 address"
    assert refusal(ipaddress.ip_address("::1")) == "a loopback address"
    assert refusal(ipaddress.ip_address("::")) == "the unspecified address"
    assert refusal(ipaddress.ip_address("::1:2:3:4")) == "a reserved address"


async def test_a_refused_name_does_not_disclose_what_it_resolves_to(
    local: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 10: step errors disclosed internal DNS answers ("`vm` resolves to 127.0.0.1"):
    the error says the name is refused, without the address; the server's log keeps it."""
    from skillrun.engine import CapabilityError

    port = local.rsplit(":", 1)[1]
    caplog.set_level("INFO", logger="skillrun.capabilities.http")
    with pytest.raises(CapabilityError) as info:
        await _cap()({"url": f"http://localhost:{port}/json", "timeout_ms": 500})
    message = str(info.value)
    assert info.value.kind == "http_refused" and message.startswith("localhost is refused")
    for leaked in ("127.0.0.1", "::1", "loopback"):
        assert leaked not in message, message
    assert "resolves to 127.0.0.1, a loopback address" in caplog.text or "resolves to ::1" in caplog.text


async def test_deeply_nested_json_fails_the_step_cleanly(local: str) -> None:
    """Issue 10: a JSON answer of ``"[" * 100000 + "]" * 100000`` raised RecursionError out
    of the parser; it is a step failure with a clear kind and message."""
    reg = builtin_registry(HttpPolicy(["127.0.0.1"]))
    s = _fetch_skill(local, "/deep-json", reg)
    outcome, rec, _ = await run(engine_for(s, registry=reg), s)
    assert outcome.error is not None and outcome.error["kind"] == "http_too_large"
    assert "nests too deeply" in outcome.error["message"]
    assert rec.types("call") == ["step_start", "step_failed"]


async def test_a_redirect_loop_is_not_retried(local: str) -> None:
    """Issue 10: a redirect loop made 60 outbound requests: web.summarize's retry
    (``on: [http_error, http_status, timeout]``, 3 attempts) repeated a failure that cannot
    pass. Its kind ``http_too_many_redirects`` is retried by neither that list nor the default."""
    reg = builtin_registry(HttpPolicy(["127.0.0.1"]))
    for n, retry in enumerate(
        [
            "retry: {max_attempts: 3, backoff: {initial_ms: 1}, on: [http_error, http_status, timeout]}",
            "retry: {max_attempts: 3, backoff: {initial_ms: 1}}",
        ],
        start=1,
    ):
        s = _fetch_skill(local, "/loop", reg, ", follow_redirects: true", retry)
        outcome, rec, _ = await run(engine_for(s, registry=reg), s)
        assert outcome.error is not None and outcome.error["kind"] == "http_too_many_redirects"
        assert rec.types("call") == ["step_start", "step_failed"]
        assert _hits(local, "/loop") == 21 * n  # the request and 20 redirects, once


@pytest.mark.parametrize("path", ["/to-file", "/to-ftp"])
async def test_a_redirect_to_an_unsupported_scheme_is_not_retried(local: str, path: str) -> None:
    """Issue 10: unsupported schemes were ``http_error`` and retried; they cannot succeed."""
    reg = builtin_registry(HttpPolicy(["127.0.0.1"]))
    retry = "retry: {max_attempts: 3, backoff: {initial_ms: 1}, on: [http_error, http_status, timeout]}"
    s = _fetch_skill(local, path, reg, ", follow_redirects: true", retry)
    before = _hits(local, path)
    outcome, rec, _ = await run(engine_for(s, registry=reg), s)
    assert outcome.error is not None and outcome.error["kind"] == "http_unsupported", outcome.error
    assert "is not supported" in outcome.error["message"]
    assert rec.types("call") == ["step_start", "step_failed"] and _hits(local, path) == before + 1


async def test_credential_headers_are_left_out_unless_asked_for(local: str) -> None:
    """Issue 10: ``http.request`` put ``Set-Cookie`` and credential-bearing headers in its
    output (stored, streamed, shown to whoever reads the run); they are kept only with
    ``credential_headers: true``."""
    hidden = {"set-cookie", "www-authenticate", "proxy-authenticate", "authorization"}
    out = await _cap("127.0.0.1")({"url": local + "/credentials"})
    assert hidden.isdisjoint(out["headers"]) and out["headers"]["x-request-id"] == "r-1"
    out = await _cap("127.0.0.1")({"url": local + "/credentials", "credential_headers": True})
    assert out["headers"]["set-cookie"] == "session=s3cr3t; HttpOnly"
    assert hidden <= set(out["headers"])


async def test_a_rendered_input_that_breaks_the_schema_fails_before_any_request(local: str) -> None:
    """Issue 10: only literal inputs were checked (at load); a ``url`` rendered from a skill
    input reached the capability unchecked. It now fails with ``input_invalid`` naming the field."""
    reg = builtin_registry(HttpPolicy(["127.0.0.1"]))
    s = skill(
        """
        id: rendered
        version: "1"
        steps:
          - {id: call, uses: http.request, input: {url: "${inputs.url}", timeout_ms: "${inputs.ms}"}}
        """,
        reg,
    )
    engine = engine_for(s, registry=reg)
    outcome, rec, _ = await run(engine, s, {"url": "file:///etc/passwd", "ms": 100})
    assert outcome.error is not None and outcome.error["kind"] == "input_invalid"
    assert outcome.error["message"].startswith("http.request input.url: ")
    outcome, _, _ = await run(engine, s, {"url": local + "/json", "ms": 0})
    assert outcome.error is not None and outcome.error["kind"] == "input_invalid"
    assert "input.timeout_ms: 0 is less than the minimum of 1" in outcome.error["message"]
    outcome, _, _ = await run(engine, s, {"url": local + "/json", "ms": 500})
    assert outcome.status == "completed"
