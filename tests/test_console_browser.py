"""The web console in headless Chromium against one real ``skillrun serve`` (issue 16).

The scenarios are node:test cases in console/test/browser.test.mjs (playwright-core
drives Debian's /usr/bin/chromium, as the JS client's browser test does; axe-core
checks each page): sign-in and its 401, demo.showcase from the form (detailed on;
detailed off with fail on), doc.pipeline's nested foreach group, a 422 on its field,
a reload mid demo.ticker with one row per event, cancel, the runs list's paging and
filters, 375 px. One server and one browser for all (CI time); screenshots go to
``SKILLRUN_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import API_KEY, require_tool, start_server
from test_console import CONSOLE, require_console_toolchain


def test_console_scenarios_in_headless_chromium(tmp_path: Path) -> None:
    """Every scenario of console/test/browser.test.mjs passes against a real server."""
    node = require_console_toolchain()
    chromium = os.environ.get("SKILLRUN_CHROMIUM") or require_tool("chromium")
    if not (CONSOLE / "node_modules" / "playwright-core").is_dir():
        pytest.fail("console/node_modules lacks playwright-core: run `npm ci` in console/")
    server = start_server(tmp_path, env={"SKILLRUN_DB": str(tmp_path / "runs.db")})
    try:
        env = {**os.environ, "SKILLRUN_URL": server.url, "SKILLRUN_KEY": API_KEY, "SKILLRUN_CHROMIUM": chromium}
        result = subprocess.run(
            [node, "--test", "--test-reporter=spec", "test/browser.test.mjs"],
            cwd=CONSOLE, env=env, capture_output=True, text=True, timeout=600,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
