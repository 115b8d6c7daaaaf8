"""``http.request``: call an HTTP API from a step, without reaching inside the network.

SSRF protection happens after DNS resolution, before each request (redirects
included) is sent: every address the host resolves to is checked, and loopback, private, link-local (cloud metadata
169.254.169.254 among them), shared, multicast, reserved and unspecified addresses
are refused unless ``SKILLRUN_HTTP_ALLOW`` (host names, IP addresses, CIDRs,
comma-separated) allows them. IPv6 forms that carry an IPv4 address (IPv4-mapped
and -translated, IPv4-compatible, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are
judged by that IPv4 address; site-local ``fec0::/10`` and local-use NAT64
``64:ff9b:1::/48`` are refused outright. The connection then goes to the checked address
itself, not to a second lookup of the name, so a name that answers differently
the second time (DNS rebinding) cannot slip through. Proxies from the environment are ignored (a proxy would be
the only address checked). A refused *name* is reported without the address it
resolved to: step errors reach whoever runs the skill, the internal DNS must not
(the server's log has it).

The answer is read within ``max_bytes`` twice: the bytes on the wire and the bytes
they decode to, counted as they arrive; gzip and deflate are inflated in bounded
pieces, so a small compressed bomb costs at most ``max_bytes`` of memory.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import ssl
import zlib
from typing import Any, AsyncIterator, Iterable, Iterator

import httpx

from ..engine.capability import Capability, CapabilityError, idempotency_key
from ..observe.context import outgoing_trace_headers

ALLOW_ENV = "SKILLRUN_HTTP_ALLOW"
PUBLIC_ENV = "SKILLRUN_HTTP_PUBLIC"

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
}
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # RFC 3879: deprecated, still routed inside some networks
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use, the embedding is the network's own
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address is the last 32 bits
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 SIIT, written ::ffff:0:a.b.c.d
_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 IPv4-compatible ::a.b.c.d (deprecated)


class HttpRefused(Exception):
    """The request would reach an address that is not allowed."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (and reaches through a translator), if any."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _TRANSLATED or ip in _COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be reached without an allow entry, or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_loopback or ip.is_unspecified:  # ::1 and :: are inside ::/96 too
            return "a loopback address" if ip.is_loopback else "the unspecified address"
        if ip in _SITE_LOCAL:
            return "a site-local address"
        if ip in _NAT64_LOCAL:
            return "a local-use NAT64 address"
        if ip.ipv4_mapped is not None:  # an IPv4 address on an IPv6 socket: the same address
            return refusal(ip.ipv4_mapped)
        inner = _embedded_ipv4(ip)
        if inner is not None:  # reached through a translator or tunnel: judged by where it ends
            why = refusal(inner)
            return None if why is None else f"{why} inside an IPv6 address"
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


class HttpPolicy:
    """Which non-public addresses a step may reach anyway (``SKILLRUN_HTTP_ALLOW``).

    ``public=False`` (``SKILLRUN_HTTP_PUBLIC=0``) refuses public addresses too, so
    only the allowed entries are reachable, and names that are not allowed are not
    even resolved: for sandboxes and test suites that must send nothing outside.
    """

    def __init__(self, allow: Iterable[str] = (), public: bool = True) -> None:
        self.public = public
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        for entry in allow:
            entry = entry.strip()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    @classmethod
    def from_env(cls) -> "HttpPolicy":
        public = os.environ.get(PUBLIC_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
        return cls(os.environ.get(ALLOW_ENV, "").split(","), public=public)

    def allows(self, host: str, ip: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        return any(ip in net for net in self.networks)

    async def resolve(self, host: str, port: int) -> str:
        """The checked address to connect to for ``host``; raises ``HttpRefused``.

        A name that does not resolve raises ``httpx.ConnectError``, as httpx itself
        would: a network error that may pass, not a refusal.
        """
        try:
            ips: list[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
            literal = True
        except ValueError:
            if not self.public and host.lower().rstrip(".") not in self.hosts:
                raise HttpRefused(f"{host} is not in {ALLOW_ENV} and {PUBLIC_ENV} is off; refused") from None
            ips = await self._lookup(host, port)
            literal = False
        # Every address must pass: the resolver, not us, picks which one is used.
        for ip in ips:
            why = refusal(ip) if self.public else f"not allowed while {PUBLIC_ENV} is off"
            if why is not None and not self.allows(host, ip):
                raise HttpRefused(self._refused(host, ip, why, literal))
        return str(ips[0])

    @staticmethod
    async def _lookup(host: str, port: int) -> list[IPAddress]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpx.ConnectError(f"cannot resolve {host!r}: {exc.strerror}") from None
        ips = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
        if not ips:
            raise httpx.ConnectError(f"cannot resolve {host!r}")
        return ips

    @staticmethod
    def _refused(host: str, ip: IPAddress, why: str, literal: bool) -> str:
        if literal:  # the caller wrote the address: naming it tells them nothing new
            return f"{host} is {why}; refused (allow it with {ALLOW_ENV})"
        # What an internal name resolves to is the network's business, not the step's.
        logger.info("http.request: %s resolves to %s, %s; refused", host, ip, why)
        return f"{host} is refused: it resolves to an address that may not be reached (allow the name with {ALLOW_ENV})"


class _GuardedTransport(httpx.AsyncBaseTransport):
    """Sends each request to the address the policy checked, through httpx's own transport.

    The URL's host is replaced by that address, so nothing resolves the name a
    second time; the ``Host`` header keeps the name, and for HTTPS so do SNI and
    the certificate check (httpcore's ``sni_hostname`` request extension). Every
    request passes here, redirects included. Connections are not kept alive: a
    pooled connection belongs to an address, and reusing one made for another
    name's certificate would skip that name's check.
    """

    def __init__(self, policy: HttpPolicy, ssl_context: ssl.SSLContext) -> None:
        self._policy = policy
        self._inner = httpx.AsyncHTTPTransport(
            verify=ssl_context, trust_env=False, retries=0, limits=httpx.Limits(max_keepalive_connections=0)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):  # e.g. a redirect to file:// or ftp://
            raise httpx.UnsupportedProtocol(f"{url} is not supported: only http:// and https:// URLs are")
        host = url.raw_host.decode("ascii")  # IDNA-encoded, IPv6 without brackets
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await self._policy.resolve(host, port)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        pinned = httpx.Request(
            request.method, url.copy_with(host=address), headers=request.headers, stream=request.stream, extensions=extensions
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


MAX_REDIRECTS = 20  # as browsers and httpx
# What a request fails with, besides the engine's kinds (``retry.on`` is checked against them).
ERROR_KINDS = frozenset(
    {"http_refused", "http_error", "http_status", "http_too_large", "http_too_many_redirects", "http_unsupported"}
)
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

#: Response headers that carry credentials or session state: left out of the
#: output (which is stored, streamed and shown) unless the step asks for them.
CREDENTIAL_HEADERS = frozenset(
    {
        "set-cookie",
        "set-cookie2",
        "cookie",
        "authorization",
        "proxy-authorization",
        "proxy-authenticate",
        "www-authenticate",
        "authentication-info",
        "proxy-authentication-info",
        "x-api-key",
        "x-auth-token",
        "x-amz-security-token",
        "x-csrf-token",
        "x-xsrf-token",
    }
)

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["url"],
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string", "pattern": "^[hH][tT][tT][pP][sS]?://", "description": "http:// or https:// URL."},
        "method": {"type": "string", "enum": _METHODS, "default": "GET"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "query": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "json": {"description": "A JSON request body."},
        "body": {"type": "string", "description": "A text request body."},
        "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 300_000, "default": 10_000},
        "max_bytes": {
            "type": "integer",
            "minimum": 1,
            "maximum": 50_000_000,
            "default": 1_000_000,
            "description": "The most bytes read, on the wire and once decoded (gzip, deflate); more fails with `http_too_large`.",
        },
        "follow_redirects": {"type": "boolean", "default": False},
        "fail_on_status": {"type": "boolean", "default": True, "description": "A 4xx/5xx answer fails the step (kind `http_status`)."},
        "credential_headers": {
            "type": "boolean",
            "default": False,
            "description": "Keep Set-Cookie, WWW-Authenticate and other credential-bearing response headers in `headers`.",
        },
    },
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "headers", "url", "text"],
    "properties": {
        "status": {"type": "integer"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "url": {"type": "string"},
        "text": {"type": "string"},
        "json": {"description": "The parsed body when it is JSON."},
    },
}

# Inflate at most this much per step: memory per request stays max_bytes plus a
# few pieces, however small the compressed input that expands (zlib reaches ~1000:1).
_PIECE = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_UNSUPPORTED_CODINGS = frozenset({"br", "zstd", "compress", "x-compress"})


class _Undecodable(Exception):
    """The body does not decode as its Content-Encoding says."""


class _Inflater:
    """One gzip or deflate layer that never yields more than ``_PIECE`` bytes at once.

    ``decompress(data, max_length)`` keeps what it did not get to in
    ``unconsumed_tail``; a full piece may leave output inside zlib, so the loop
    asks again until a piece comes back short with no input left.
    """

    def __init__(self, coding: str) -> None:
        self._gzip = coding in ("gzip", "x-gzip")
        self._wbits = zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        self._started = False
        self._ended = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self._ended:
            if self._obj.eof:
                data = self._obj.unused_data + data
                if not data:  # the next member, if any, comes with the next chunk
                    return
                # RFC 1952 2.2: a gzip body may be several members; anything else after the end is ignored.
                if not (self._gzip and _GZIP_MAGIC.startswith(data[:2])):
                    self._ended = True
                    return
                self._obj = zlib.decompressobj(self._wbits)
            out = self._decompress(data)
            data = self._obj.unconsumed_tail
            if out:
                yield out
            if not data and len(out) < _PIECE and not self._obj.eof:
                return

    def _decompress(self, data: bytes) -> bytes:
        try:
            out = self._obj.decompress(data, _PIECE)
        except zlib.error as exc:
            if self._gzip or self._started:
                raise _Undecodable(f"invalid {'gzip' if self._gzip else 'deflate'} data: {exc}") from None
            # "deflate" is often sent raw, without the zlib wrapper RFC 9110 asks for (httpx accepts both).
            self._wbits = -zlib.MAX_WBITS
            self._obj = zlib.decompressobj(self._wbits)
            self._started = True
            return self._decompress(data)
        self._started = True
        return out


class _Body:
    """Reads an answer within ``limit``: the bytes on the wire, then what they decode to."""

    def __init__(self, content_encoding: str, limit: int, url: str) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        unsupported = [c for c in codings if c in _UNSUPPORTED_CODINGS]
        if unsupported:
            raise CapabilityError(f"{url} answered in content-encoding {unsupported[0]}, which is not supported", kind="http_unsupported")
        # The last coding applied is the first undone (RFC 9110 8.4); unknown tokens pass through, as in httpx.
        self._layers = [_Inflater(c) for c in reversed(codings) if c in ("gzip", "x-gzip", "deflate")]
        self._limit = limit
        self._url = url
        self._wire = 0
        self._body = bytearray()

    async def read(self, chunks: AsyncIterator[bytes]) -> bytes:
        async for chunk in chunks:
            self._wire += len(chunk)
            if self._wire > self._limit:
                raise self._too_large("")
            for piece in self._decoded(chunk, 0):
                self._body += piece
                if len(self._body) > self._limit:
                    raise self._too_large(" once decoded")
        return bytes(self._body)

    def _decoded(self, data: bytes, layer: int) -> Iterator[bytes]:
        if layer == len(self._layers):
            yield data
            return
        for piece in self._layers[layer].feed(data):
            yield from self._decoded(piece, layer + 1)

    def _too_large(self, how: str) -> CapabilityError:
        return CapabilityError(f"the answer from {self._url} is larger than {self._limit} bytes{how}", kind="http_too_large")


def _output_headers(headers: httpx.Headers, keep_credentials: bool) -> dict[str, str]:
    out = {k.lower(): v for k, v in headers.items()}
    if not keep_credentials:
        for name in CREDENTIAL_HEADERS.intersection(out):
            del out[name]
    return out


_NOT_JSON = object()


def _parse_json(text: str, url: str) -> Any:
    """The body as JSON; ``_NOT_JSON`` when it is not JSON; a step failure when it nests too deep to parse."""
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON
    except RecursionError:  # "[" * 100000: the parser recurses once per level
        raise CapabilityError(f"the JSON answer from {url} nests too deeply to parse", kind="http_too_large") from None


def _request_headers(given: dict[str, str], has_json: bool) -> httpx.Headers:
    headers = httpx.Headers(given)
    if has_json:
        headers.setdefault("content-type", "application/json")
    # Only what _Body can inflate in bounded pieces (httpx would add br and zstd when installed).
    headers.setdefault("accept-encoding", "gzip, deflate")
    # The called service joins the run's trace, unless the skill set its own context.
    for name, value in outgoing_trace_headers().items():
        headers.setdefault(name, value)
    return headers


def make_capability(policy: HttpPolicy | None = None) -> Capability:
    """The ``http.request`` capability under ``policy`` (default: from the environment)."""
    pol = policy if policy is not None else HttpPolicy.from_env()
    tls = httpx.create_ssl_context()  # loading the CA bundle takes milliseconds: once

    async def request(args: dict[str, Any]) -> dict[str, Any]:
        url = args["url"]
        method = args.get("method", "GET")
        limit = int(args.get("max_bytes", 1_000_000))
        timeout = httpx.Timeout(args.get("timeout_ms", 10_000) / 1000)
        content = None
        if "json" in args:
            content = json.dumps(args["json"]).encode()
        elif "body" in args:
            content = str(args["body"]).encode()
        try:
            headers = _request_headers(args.get("headers") or {}, "json" in args)
        except ValueError as exc:  # a value that is not ASCII
            raise CapabilityError(f"input.headers: {exc}", kind="input_invalid") from None
        key = idempotency_key()
        if key is not None and method not in ("GET", "HEAD", "OPTIONS") and "idempotency-key" not in headers:
            # The same for every attempt of this step instance and after a resume:
            # a receiver that honours it drops the repeat of a call (at-least-once).
            headers["Idempotency-Key"] = key
        try:
            target = httpx.URL(url)
            if args.get("query"):  # added to the URL's own query, not replacing it
                target = target.copy_merge_params(args["query"])
        except (httpx.InvalidURL, ValueError) as exc:
            raise CapabilityError(f"input.url: {exc}", kind="input_invalid") from None
        try:
            async with httpx.AsyncClient(
                transport=_GuardedTransport(pol, tls),
                timeout=timeout,
                follow_redirects=bool(args.get("follow_redirects", False)),
                max_redirects=MAX_REDIRECTS,
                trust_env=False,
            ) as client:
                async with client.stream(method, target, headers=headers, content=content) as response:
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise CapabilityError(
                            f"the answer from {url} is {declared} bytes, more than {limit}", kind="http_too_large"
                        )
                    body = _Body(response.headers.get("content-encoding", ""), limit, url)
                    raw = await body.read(response.aiter_raw())
        except HttpRefused as exc:
            raise CapabilityError(str(exc), kind="http_refused") from None
        except httpx.TimeoutException:
            raise CapabilityError(f"{method} {url} timed out", kind="timeout") from None
        except httpx.TooManyRedirects:
            # A loop answers the same way every time: a kind retries skip (see DETERMINISTIC_KINDS).
            raise CapabilityError(f"{method} {url}: more than {MAX_REDIRECTS} redirects", kind="http_too_many_redirects") from None
        except httpx.UnsupportedProtocol as exc:
            raise CapabilityError(f"{method} {url}: {exc}", kind="http_unsupported") from None
        except httpx.LocalProtocolError as exc:  # what we would send is not HTTP (a header value with a newline)
            raise CapabilityError(f"input: {method} {url}: {exc}", kind="input_invalid") from None
        except _Undecodable as exc:
            raise CapabilityError(f"{method} {url}: {exc}", kind="http_error") from None
        except httpx.HTTPError as exc:
            raise CapabilityError(f"{method} {url}: {type(exc).__name__}: {exc}", kind="http_error") from None
        text = raw.decode(response.encoding or "utf-8", errors="replace")
        out: dict[str, Any] = {
            "status": response.status_code,
            "headers": _output_headers(response.headers, bool(args.get("credential_headers", False))),
            "url": str(response.url),
            "text": text,
        }
        if "json" in response.headers.get("content-type", ""):
            parsed = _parse_json(text, url)
            if parsed is not _NOT_JSON:
                out["json"] = parsed
        if response.status_code >= 400 and args.get("fail_on_status", True):
            raise CapabilityError(f"{method} {url} answered {response.status_code}", kind="http_status")
        return out

    return Capability(
        "http.request",
        request,
        "Call an HTTP API (timeout, size limit; private and metadata addresses refused unless allowed).",
        INPUT_SCHEMA,
        OUTPUT_SCHEMA,
        error_kinds=ERROR_KINDS,
    )
