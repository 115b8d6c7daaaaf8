"""The seed's three integrations (``docs/STREAMING.md``, copied from the system users
already integrate against) run as written against a real uvicorn server.

Only the URL (host, port, and a skill that exists) and the key are substituted.
Each must end by itself after ``done``; the timeouts here only catch a hang.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import API_KEY, ROOT, Server, require_tool
from sse_util import check_order, parse_sse

SEED_URL = "http://localhost:8080/v1/skills/my.skill/execute/stream"
SEED_PATH = "/v1/skills/my.skill/execute/stream"
SKILL_PATH = "/v1/skills/text.summarize/execute/stream"

CURL = """curl -N -X POST http://localhost:8080/v1/skills/my.skill/execute/stream \\
  -H "Content-Type: application/json" \\
  -H "x-api-key: YOUR_KEY" \\
  -d '{"inputs": {"text": "Hello world"}}'"""

JAVASCRIPT = """const response = await fetch('/v1/skills/my.skill/execute/stream', {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', 'x-api-key': 'KEY' },
  body: JSON.stringify({ inputs: { text: 'hello' } }),
});

const reader = response.body.getReader();
const decoder = new TextDecoder();
let buffer = '';

while (true) {
  const { done, value } = await reader.read();
  if (done) break;
  buffer += decoder.decode(value, { stream: true });
  const lines = buffer.split('\\n');
  buffer = lines.pop();
  for (const line of lines) {
    if (line.startsWith('data: ')) {
      const event = JSON.parse(line.slice(6));
      console.log(event.type, event.message);
    }
  }
}"""

PYTHON = """import requests

with requests.post(
    'http://localhost:8080/v1/skills/my.skill/execute/stream',
    json={'inputs': {'text': 'hello'}},
    headers={'x-api-key': 'KEY'},
    stream=True,
) as resp:
    for line in resp.iter_lines(decode_unicode=True):
        if line.startswith('data: '):
            import json
            event = json.loads(line[6:])
            print(event['type'], event.get('message', ''))"""

STEP_LINES = [
    "skill_start Starting skill 'text.summarize'.",
    "step_start Starting step 'split'.",
    "step_completed Step 'split' completed.",
    "step_start Starting step 'summarize'.",
    "step_completed Step 'summarize' completed.",
    "step_start Starting step 'keywords'.",
    "step_completed Step 'keywords' completed.",
    "skill_completed Skill 'text.summarize' completed.",
]


@pytest.mark.parametrize("snippet", [CURL, JAVASCRIPT, PYTHON], ids=["curl", "javascript", "python"])
def test_snippets_are_the_ones_in_the_docs(snippet: str) -> None:
    """What runs here is what users read (docs/STREAMING.md keeps the seed's text)."""
    docs = (ROOT / "docs" / "STREAMING.md").read_text(encoding="utf-8")
    squash = lambda s: re.sub(r"\s+", " ", s).strip()  # noqa: E731 - the docs may wrap differently
    assert squash(snippet) in squash(docs)


def _run(cmd: list[str], timeout: float = 30) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return out, time.monotonic() - t0


def test_seed_curl_exits_by_itself_after_done(server: Server) -> None:
    require_tool("curl")
    script = CURL.replace(SEED_URL, server.url + SKILL_PATH).replace("YOUR_KEY", API_KEY)
    out, _ = _run(["bash", "-c", script])
    assert out.returncode == 0, out.stderr
    frames, _ = parse_sse(out.stdout)
    events = [f.json for f in frames]
    check_order(events)
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
    assert out.stdout.rstrip("\n").splitlines()[-1].startswith("data: {")  # nothing after done


def test_curl_n_exits_right_after_done_of_a_slow_stream(server: Server) -> None:
    """A 1 s stream: curl -N ends as soon as done arrives, not at some timeout."""
    curl = require_tool("curl")
    out, elapsed = _run(
        [curl, "-sN", "-X", "POST", server.url + "/v1/skills/demo.ticker/execute/stream",
         "-H", "Content-Type: application/json", "-H", f"x-api-key: {API_KEY}",
         "-d", '{"inputs": {"steps": 4, "delay_ms": 250}}'],
    )
    assert out.returncode == 0, out.stderr
    assert "event: done" in out.stdout
    assert 1.0 <= elapsed < 4.0, elapsed


def test_seed_javascript_fetch_loop_under_node(server: Server, tmp_path: Path) -> None:
    node = require_tool("node")
    code = JAVASCRIPT.replace(SEED_PATH, server.url + SKILL_PATH).replace("'KEY'", f"'{API_KEY}'")
    assert code != JAVASCRIPT
    script = tmp_path / "seed_stream.mjs"  # .mjs: the seed uses top-level await
    script.write_text(code + "\n", encoding="utf-8")
    out, _ = _run([node, str(script)])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[: len(STEP_LINES)] == STEP_LINES
    # `done` carries a message like every other event; then the loop ends.
    assert lines[len(STEP_LINES):] == ["done Skill 'text.summarize' completed."]


def test_seed_python_requests_loop(server: Server, tmp_path: Path) -> None:
    code = PYTHON.replace(SEED_URL, server.url + SKILL_PATH).replace("'KEY'", f"'{API_KEY}'")
    assert code != PYTHON
    script = tmp_path / "seed_stream.py"
    script.write_text(code + "\n", encoding="utf-8")
    out, _ = _run([sys.executable, str(script)])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[: len(STEP_LINES)] == STEP_LINES
    assert lines[len(STEP_LINES):] == ["done Skill 'text.summarize' completed."]
