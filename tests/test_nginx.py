"""The contract through real nginx running docs/deploy/nginx.conf (issue 11).

The sample is used as it is, with only the node addresses, the listening port and the
process's own paths (pid, logs, temp dirs) filled in, so a directive dropped from it
(``proxy_buffering off``, the ``X-Forwarded-For`` overwrite, ...) shows up here. The
nodes are a parameter: each case says how many ``skillrun serve`` run behind nginx
and what they share (more than one needs the Redis store).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from conftest import ROOT, Server, free_port, require_tool
from sse_util import check_order, parse_sse
from test_stream_live import KEY, TICKER, stream

SAMPLE = ROOT / "docs" / "deploy" / "nginx.conf"
# The sample's node lines: `server HOST:PORT options;` inside `upstream skillrun`.
_NODE_LINE = re.compile(r"^(\s*)server\s+\d+\.\d+\.\d+\.\d+:\d+(\s[^;]*)?;\s*$", re.M)

# Each case: how many nodes, and the environment they all get. Every node believes
# X-Forwarded-For from nginx only (--forwarded-allow-ips 127.0.0.1).
TOPOLOGIES = [
    pytest.param({"nodes": 1, "env": {}}, id="one-node"),
    # Issue 11: two nodes on one Redis behind nginx's round robin.
    pytest.param({"nodes": 2, "env": {}, "redis": True}, id="two-nodes-on-redis"),
]


def derive_config(sample: str, upstreams: list[str], port: int, run_dir: Path) -> str:
    """The sample with this test's nodes, port and paths; every other directive unchanged."""
    nodes = _NODE_LINE.findall(sample)
    assert nodes, "the sample names no node (server HOST:PORT ...;)"
    indent, options = nodes[0]
    lines = "\n".join(f"{indent}server {u}{options or ''};" for u in upstreams)
    config = _NODE_LINE.sub("", sample)
    config = config.replace("upstream skillrun {", "upstream skillrun {\n" + lines, 1)
    assert config.count("listen 80;") == 1, "the sample listens on port 80 once"
    config = config.replace("listen 80;", f"listen 127.0.0.1:{port};")
    paths = "\n".join(
        f"    {name}_temp_path {run_dir / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = config.replace("http {", f"http {{\n    access_log {run_dir / 'access.log'};\n{paths}", 1)
    return f"daemon off;\npid {run_dir / 'nginx.pid'};\nerror_log {run_dir / 'error.log'} info;\n{config}"


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    port: int
    run_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.run_dir / "error.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_nginx(run_dir: Path, upstreams: list[str]) -> Nginx:
    binary = require_tool(shutil.which("nginx") or "/usr/sbin/nginx")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(derive_config(SAMPLE.read_text(), upstreams, port, run_dir))
    base = [binary, "-p", str(run_dir), "-e", str(run_dir / "error.log"), "-c", str(conf)]
    checked = subprocess.run([*base, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx = Nginx(proc, port, run_dir)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, nginx.log()
        try:
            if httpx.get(nginx.url + "/v1/health/live", timeout=1).status_code == 200:
                return nginx
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    nginx.stop()
    raise AssertionError(f"nginx did not start:\n{nginx.log()}")


@pytest.fixture(params=TOPOLOGIES)
def proxy_factory(
    request: pytest.FixtureRequest, server_factory: Callable[..., Server], tmp_path: Path
) -> Iterator[Callable[..., tuple[Nginx, list[Server]]]]:
    """Start this case's nodes (with extra env) and nginx in front of them."""
    topology: dict[str, Any] = request.param
    started: list[Nginx] = []
    shared: dict[str, str] = {}
    if topology.get("redis"):
        shared = {"SKILLRUN_DB": request.getfixturevalue("redis_server").url,
                  "SKILLRUN_REDIS_PREFIX": f"nginx{uuid.uuid4().hex[:8]}:"}

    def factory(env: dict[str, str] | None = None) -> tuple[Nginx, list[Server]]:
        nodes = [
            server_factory(env={**topology["env"], **shared, **(env or {})}, args=["--forwarded-allow-ips", "127.0.0.1"])
            for _ in range(topology["nodes"])
        ]
        nginx = start_nginx(tmp_path / f"nginx-{len(started)}", [f"127.0.0.1:{n.port}" for n in nodes])
        started.append(nginx)
        return nginx, nodes

    yield factory
    for nginx in started:
        nginx.stop()


def test_a_stream_through_nginx_arrives_spaced_in_time(proxy_factory: Callable[..., tuple[Nginx, list[Server]]]) -> None:
    """demo.ticker, 4 steps of 300 ms, through nginx: the first event comes at once and
    each step_completed ~300 ms after the last (nginx passes events on, buffers nothing),
    with the stream's headers and no compression although the client accepts gzip."""
    nginx, _ = proxy_factory()
    steps, delay = 4, 0.3
    r, blocks = stream(
        nginx.url + TICKER + "/execute/stream",
        {"inputs": {"steps": steps, "delay_ms": int(delay * 1000)}},
        headers={"Accept-Encoding": "gzip"},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in r.headers
    frames = [b for b in blocks if not b.is_comment]
    assert [b.event["type"] for b in frames] == (
        ["skill_start"] + ["step_start", "step_completed"] * steps + ["skill_completed", "done"]
    )
    completed = [b.at for b in frames if b.event["type"] == "step_completed"]
    assert frames[0].at < delay, frames[0].at
    assert frames[-1].at >= steps * delay * 0.95
    gaps = [b - a for a, b in zip(completed, completed[1:])]
    assert all(g >= delay * 0.7 for g in gaps), gaps
    assert completed[0] < frames[-1].at - (steps - 1) * delay * 0.7


def test_resume_with_last_event_id_through_nginx(proxy_factory: Callable[..., tuple[Nginx, list[Server]]]) -> None:
    """A stream through nginx cut after 5 events, resumed through nginx with
    `Last-Event-ID: 5`: the rest of the log, from id 6, ending with one `done` completed,
    nothing lost or repeated. With two nodes, round robin: of two resumes one after the
    other, one lands on the node that did not run the stream; both get the same rest."""
    nginx, nodes = proxy_factory()
    text = ""
    with httpx.Client(timeout=30) as client:
        with client.stream(
            "POST", nginx.url + TICKER + "/execute/stream",
            json={"inputs": {"steps": 10, "delay_ms": 100}}, headers=KEY,
        ) as r:
            run_id = r.headers["x-run-id"]
            for chunk in r.iter_text():
                text += chunk
                if len(parse_sse(text)[0]) >= 5:
                    break  # the connection is closed: the view ends, the run goes on
        first = parse_sse(text)[0][:5]
        resumes = [client.get(f"{nginx.url}/v1/runs/{run_id}/events", headers={**KEY, "Last-Event-ID": "5"})
                   for _ in nodes]
    assert all(r.status_code == 200 for r in resumes)
    rest = parse_sse(resumes[0].text)[0]
    assert all([(f.id, f.data) for f in parse_sse(r.text)[0]] == [(f.id, f.data) for f in rest] for r in resumes)
    if len(nodes) > 1:  # round robin: each node answered one of the resumes (its access log says so)
        # A node writes the access line after the response's last byte: give a loaded one a moment.
        deadline = time.monotonic() + 5
        while not all("GET /v1/runs/{run_id}/events 200" in node.log() for node in nodes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all("GET /v1/runs/{run_id}/events 200" in node.log() for node in nodes), [n.log()[-600:] for n in nodes]
    frames = first + rest
    assert [int(f.id or 0) for f in frames] == list(range(1, len(frames) + 1))
    events = [f.json for f in frames]
    check_order(events)
    assert [e["type"] for e in events].count("done") == 1 and events[-1]["status"] == "completed"


def test_a_client_cannot_choose_its_address_through_nginx(proxy_factory: Callable[..., tuple[Nginx, list[Server]]]) -> None:
    """Nodes believe nginx's X-Forwarded-For, and nginx sets it to the client's own
    address: five wrong keys, each claiming another `X-Forwarded-For`, share one budget
    (SKILLRUN_RATE_LIMIT=3/minute): the fourth is 429."""
    nginx, _ = proxy_factory({"SKILLRUN_RATE_LIMIT": "3/minute"})
    statuses = [
        httpx.get(
            nginx.url + "/v1/runs", headers={"x-api-key": "wrong-key-0000", "X-Forwarded-For": f"203.0.113.{i}"}
        ).status_code
        for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
