"""``http.request``: call an HTTP API from a step, without reaching inside the network.

SSRF protection happens after DNS resolution, before each request (redirects
included) is sent: every address the host resolves to is checked, and loopback, private, link-local (cloud metadata
169.254.169.254 among them), shared, multicast, reserved and unspecified addresses
are refused unless ``SKILLRUN_HTTP_ALLOW`` (host names, IP addresses, CIDRs,
comma-separated) allows them. The connection then goes to the checked address
itself, not to a second lookup of the name, so a name that answers differently
the second time (DNS rebinding) cannot slip through. Proxies from the environment are ignored (a proxy would be
the only address checked).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import ssl
from typing import Any, AsyncIterator, Iterable

import httpx

from ..engine.capability import Capability, CapabilityError

ALLOW_ENV = "SKILLRUN_HTTP_ALLOW"
PUBLIC_ENV = "SKILLRUN_HTTP_PUBLIC"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
}


class HttpRefused(Exception):
    """The request would reach an address that is not allowed."""


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be reached without an allow entry, or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
        """The checked address to connect to for ``host``; raises ``HttpRefused``."""
        try:
            ips: list[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            if not self.public and host.lower().rstrip(".") not in self.hosts:
                raise HttpRefused(f"{host} is not in {ALLOW_ENV} and {PUBLIC_ENV} is off; refused") from None
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise HttpRefused(f"cannot resolve {host!r}: {exc.strerror}") from None
            ips = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
        if not ips:
            raise HttpRefused(f"cannot resolve {host!r}")
        # Every address must pass: the resolver, not us, picks which one is used.
        for ip in ips:
            why = refusal(ip) if self.public else "not allowed while SKILLRUN_HTTP_PUBLIC is off"
            if why is not None and not self.allows(host, ip):
                raise HttpRefused(
                    f"{host} resolves to {ip}, {why}; refused (allow it with {ALLOW_ENV})"
                )
        return str(ips[0])


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


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

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
        "max_bytes": {"type": "integer", "minimum": 1, "maximum": 50_000_000, "default": 1_000_000},
        "follow_redirects": {"type": "boolean", "default": False},
        "fail_on_status": {"type": "boolean", "default": True, "description": "A 4xx/5xx answer fails the step (kind `http_status`)."},
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


async def _read_limited(chunks: AsyncIterator[bytes], limit: int, url: str) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise CapabilityError(f"the answer from {url} is larger than {limit} bytes", kind="http_too_large")
    return bytes(body)


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
        headers = dict(args.get("headers") or {})
        if "json" in args:
            content = json.dumps(args["json"]).encode()
            headers.setdefault("content-type", "application/json")
        elif "body" in args:
            content = str(args["body"]).encode()
        try:
            async with httpx.AsyncClient(
                transport=_GuardedTransport(pol, tls),
                timeout=timeout,
                follow_redirects=bool(args.get("follow_redirects", False)),
                trust_env=False,
            ) as client:
                target = httpx.URL(url)
                if args.get("query"):  # added to the URL's own query, not replacing it
                    target = target.copy_merge_params(args["query"])
                async with client.stream(method, target, headers=headers, content=content) as response:
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise CapabilityError(
                            f"the answer from {url} is {declared} bytes, more than {limit}", kind="http_too_large"
                        )
                    raw = await _read_limited(response.aiter_bytes(), limit, url)
        except HttpRefused as exc:
            raise CapabilityError(str(exc), kind="http_refused") from None
        except httpx.TimeoutException:
            raise CapabilityError(f"{method} {url} timed out", kind="timeout") from None
        except httpx.HTTPError as exc:
            raise CapabilityError(f"{method} {url}: {type(exc).__name__}: {exc}", kind="http_error") from None
        text = raw.decode(response.encoding or "utf-8", errors="replace")
        out: dict[str, Any] = {
            "status": response.status_code,
            "headers": {k.lower(): v for k, v in response.headers.items()},
            "url": str(response.url),
            "text": text,
        }
        if "json" in response.headers.get("content-type", ""):
            try:
                out["json"] = json.loads(text)
            except ValueError:
                pass
        if response.status_code >= 400 and args.get("fail_on_status", True):
            raise CapabilityError(f"{method} {url} answered {response.status_code}", kind="http_status")
        return out

    return Capability(
        "http.request",
        request,
        "Call an HTTP API (timeout, size limit; private and metadata addresses refused unless allowed).",
        INPUT_SCHEMA,
        OUTPUT_SCHEMA,
    )
