"""Helpers for the delta and ``llm.chat`` tests: skills written to a directory, a
server pointed at a fake model, whole streams read and checked."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable

import httpx

from conftest import API_KEY, Server
from sse_util import check_order, parse_sse
from spec_tools import event_validator

KEY = {"x-api-key": API_KEY}
_check_event = event_validator()

CHAT_SKILL = """
id: t.chat
version: "1"
inputs:
  type: object
  properties:
    question: { type: string, default: "Say hello." }
outputs:
  text: { value: "${steps.answer.text}" }
steps:
  - id: answer
    uses: llm.chat
    %(extra)s
    input:
      model: fake-model
      temperature: 0.5
      max_tokens: 64
      system: Be brief.
      messages:
        - { role: user, content: "${inputs.question}" }
"""


def chat_skill(tmp_path: Path, extra: str = "", name: str = "skills") -> Path:
    """A directory with ``t.chat``: one ``llm.chat`` step, ``extra`` YAML lines added to it."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    indented = textwrap.indent(textwrap.dedent(extra).strip(), "    ").strip()
    (folder / "t.chat.yaml").write_text(CHAT_SKILL % {"extra": indented})
    return folder


def serve(server_factory: Callable[..., Server], skills: Path | None, env: dict[str, str] | None = None) -> Server:
    """A server (its runs in memory: several may share a test's directory)."""
    return server_factory(env=env or {}, args=["--db", ":memory:", *(["--skills", str(skills)] if skills else [])])


def stream(server: Server, skill_id: str, inputs: dict[str, Any], timeout: float = 60) -> list[dict[str, Any]]:
    """Every event of a run started with ``/execute/stream``, checked for schema and order."""
    with httpx.Client(timeout=timeout) as c:
        r = c.post(f"{server.url}/v1/skills/{skill_id}/execute/stream", json={"inputs": inputs}, headers=KEY)
        assert r.status_code == 200, r.text
    return checked([dict(f.json) for f in parse_sse(r.text)[0]])


def checked(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for e in events:
        _check_event(e)
    check_order(events)
    return events


def deltas(events: list[dict[str, Any]], step_id: str = "answer") -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "step_delta" and e.get("step_id") == step_id]


def joined(events: list[dict[str, Any]], attempt: int | None = None) -> str:
    """The text of ``attempt``'s deltas (default: the last attempt's), in sequence order."""
    if attempt is None and events:
        attempt = max(e["data"]["attempt"] for e in events)
    mine = sorted((e for e in events if e["data"]["attempt"] == attempt), key=lambda e: e["data"]["sequence"])
    return "".join(e["data"]["delta"].get("text", "") for e in mine)


def terminal(events: list[dict[str, Any]], step_id: str = "answer") -> dict[str, Any]:
    ends = [e for e in events if e.get("step_id") == step_id and e["type"] in ("step_completed", "step_failed", "step_degraded")]
    assert len(ends) == 1, ends
    return ends[0]


def assert_sequences(events: list[dict[str, Any]]) -> None:
    """Within each attempt, ``sequence`` is 1, 2, ... without gaps, in log order."""
    seen: dict[int, int] = {}
    for e in events:
        attempt, seq = e["data"]["attempt"], e["data"]["sequence"]
        assert seq == seen.get(attempt, 0) + 1, (attempt, seq, seen)
        seen[attempt] = seq
