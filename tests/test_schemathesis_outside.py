"""Schemathesis from outside, as a new user runs it: 0 failures (issue 13, section 1).

The CLI (``schemathesis run URL -H "x-api-key: ..."``) from a temporary directory with no
``schemathesis.toml``, against a real ``skillrun serve``: all phases, all checks, default
settings, and only the hook any user adds for the slow demo skill (tests/outside/).

The server runs with its default settings (the body limit's default, 8 MiB, fits the
largest body the bundled skills' schemas call valid: at 1 MiB some valid bodies got 413,
which schemathesis' defaults rightly count as failures). The rate limit is raised as
conftest does for every server (thousands of requests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import API_KEY, ROOT, start_server

# Thousands of requests: more than the suite's default per-test timeout on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

HOOK = ROOT / "tests" / "outside" / "ticker_hook.py"


def _schemathesis() -> str:
    cli = Path(sys.executable).parent / "schemathesis"
    return str(cli) if cli.exists() else shutil.which("schemathesis") or "schemathesis"


def test_schemathesis_from_outside_finds_nothing(tmp_path: Path) -> None:
    """Issue 13: run as a user would, schemathesis found 13 failures (refused preflights
    answered 400, loaded ids sent through the templated execute operations, a Last-Event-ID
    past the log's end answered 200; since then also an Idempotency-Key reused with another
    body answered 422). Now: exit 0, no failure."""
    server = start_server(tmp_path)
    outside = tmp_path / "user-project"
    outside.mkdir()
    shutil.copy(HOOK, outside / "ticker_hook.py")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "ticker_hook", "PYTHONPATH": str(outside)}
    try:
        done = subprocess.run(
            [_schemathesis(), "run", f"{server.url}/openapi.json", "-H", f"x-api-key: {API_KEY}"],
            cwd=outside, env=env, capture_output=True, text=True, timeout=900,
        )
    finally:
        server.stop()
    report = done.stdout + done.stderr
    assert not (outside / "schemathesis.toml").exists()
    assert done.returncode == 0, report[-20000:]
    assert "failures" not in report.splitlines()[-1], report[-5000:]
    assert " passed" in report, report[-5000:]
