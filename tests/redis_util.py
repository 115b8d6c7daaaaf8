"""Real ``redis-server`` processes for tests: one server, or a three-master Cluster.

Each runs on a free port in its own directory with AOF on (``appendfsync always``:
what a test saw acknowledged survives a stop), and is stopped by its fixture.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (Redis needs both <= 65535)."""
    for _ in range(200):
        port = random.randint(20000, 50000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for redis-server")


@dataclass
class RedisServer:
    binary: str
    directory: Path
    port: int = field(default_factory=_free_port)
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no",
             *self.extra],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.directory / "redis.log").read_text(errors="replace"))
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        """SIGTERM: Redis flushes its AOF and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def start_cluster(binary: str, cli: str, directory: Path, masters: int = 3) -> list[RedisServer]:
    nodes: list[RedisServer] = []
    try:
        for i in range(masters):
            nodes.append(RedisServer(binary, directory / f"node{i}", extra=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
            ]).start())
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = redis.Redis(port=nodes[0].port).cluster("info")
            if isinstance(info, dict) and info.get("cluster_state") == "ok":
                return nodes
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not become ready")
    except BaseException:
        for node in nodes:  # never leave a half-made cluster running
            node.stop()
        raise
