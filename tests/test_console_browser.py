"""The web console in headless Chromium against one real ``skillrun serve`` (issue 16).

The scenarios are node:test cases in console/test/browser.test.mjs (playwright-core
drives Debian's /usr/bin/chromium, as the JS client's browser test does; axe-core
checks each page): sign-in and its 401, demo.showcase from the form (detailed on;
detailed off with fail on), doc.pipeline's nested foreach group, a 422 on its field,
a reload mid demo.ticker with one row per event, the network lost mid demo.ticker
(briefly, and for longer than the JS client's reconnects: page.route cuts the stream
and refuses its resumes) with one row per event, a waiting step answered from its
form, demo.ticker's progress bar and each item's own, demo.chat's text growing in its
panel (against the tests' fake model server, whose first answer breaks off so the
retry's restart clears the text), a foreach item's and a nested step's text in their
own places (console.answers from tests/console_skills, loaded with SKILLRUN_SKILLS),
cancel, the runs list's paging and filters, the keyboard alone (sign in, fill, run,
cancel; a group opened), 375 px. One server and one
browser for all (CI time); screenshots go to ``SKILLRUN_SCREENSHOTS`` when set.

The browser reaches the server through nginx under the path prefix ``/prefix`` (which
nginx strips), the server started with ``--root-path /prefix``: every scenario also
checks that the console works behind a proxy prefix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import API_KEY, free_port, require_tool, start_server
from fake_llm import FakeLLM, Reply
from test_console import CONSOLE, require_console_toolchain

PREFIX = "/prefix"
# Skills only these scenarios use (console.answers: a foreach item's and a nested step's text).
SKILLS = Path(__file__).resolve().parent / "console_skills"


# demo.chat's model: the first answer breaks off after its third chunk (retried), the
# second streams the answer a chunk at a time; every later request fails (a fallback).
CHAT_PLAN = [
    Reply(["WRONG ", "FIRST ", "TRY"], pace_s=0.5, cut_after=3),
    Reply(["Cats ", "purr ", "and ", "nap ", "all ", "day."], pace_s=0.3),
    Reply(status=500, error="the model is down"),
]


def nginx_config(run_dir: Path, port: int, upstream: str) -> str:
    """A proxy serving the app under PREFIX, stripping it, streams unbuffered."""
    temp = "\n".join(f"  {n}_temp_path {run_dir / n};" for n in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
pid {run_dir / 'nginx.pid'};
error_log {run_dir / 'error.log'} info;
events {{}}
http {{
  access_log {run_dir / 'access.log'};
{temp}
  server {{
    listen 127.0.0.1:{port};
    location {PREFIX}/ {{
      proxy_pass http://{upstream}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 1h;
    }}
  }}
}}
"""


def start_proxy(run_dir: Path, upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = require_tool(shutil.which("nginx") or "/usr/sbin/nginx")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(nginx_config(run_dir, port, upstream))
    proc = subprocess.Popen([binary, "-p", str(run_dir), "-e", str(run_dir / "error.log"), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}{PREFIX}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, (run_dir / "error.log").read_text(errors="replace")
        try:
            if httpx.get(url + "/v1/health/live", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("nginx did not start")


def test_console_scenarios_in_headless_chromium_behind_a_path_prefix(tmp_path: Path) -> None:
    """Every scenario of console/test/browser.test.mjs passes against a real server
    served under `/prefix` by nginx (`skillrun serve --root-path /prefix`)."""
    node = require_console_toolchain()
    chromium = os.environ.get("SKILLRUN_CHROMIUM") or require_tool("chromium")
    if not (CONSOLE / "node_modules" / "playwright-core").is_dir():
        pytest.fail("console/node_modules lacks playwright-core: run `npm ci` in console/")
    with FakeLLM(CHAT_PLAN) as fake:
        llm = {"SKILLRUN_LLM_BASE_URL": fake.base_url, "SKILLRUN_LLM_API_KEY": "sk-console-test-0123"}
        skills = {"SKILLRUN_SKILLS": str(SKILLS)}
        server = start_server(tmp_path, env={"SKILLRUN_DB": str(tmp_path / "runs.db"), **llm, **skills}, args=["--root-path", PREFIX])
        proxy: subprocess.Popen[bytes] | None = None
        try:
            proxy, url = start_proxy(tmp_path / "nginx", f"127.0.0.1:{server.port}")
            env = {**os.environ, "SKILLRUN_URL": url, "SKILLRUN_KEY": API_KEY, "SKILLRUN_CHROMIUM": chromium}
            result = subprocess.run(
                [node, "--test", "--test-reporter=spec", "test/browser.test.mjs"],
                cwd=CONSOLE, env=env, capture_output=True, text=True, timeout=600,
            )
        finally:
            if proxy is not None:
                proxy.terminate()
                proxy.wait(10)
            server.stop()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
