"""Issue 17: `docs/STREAMING.md` opened with a pasted web page ("Skip to content", no
headings, 8 of 11 event types, a `done` example without `type`, `step_start` with
`data: null`) that contradicted its second half. It is one document now, and every
example in it is checked here against the contract (`openapi/skillrun.yaml`)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from conftest import ROOT
from skillrun.http.spec import load_base_spec
from spec_tools import event_validator
from sse_util import check_order, parse_sse

DOC = (ROOT / "docs" / "STREAMING.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
SPEC = load_base_spec()
EVENT_TYPES = SPEC["components"]["schemas"]["EventType"]["enum"]
CHECK = event_validator()


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(DOC) if lang == language]


def test_the_doc_is_one_document_with_headings() -> None:
    """No pasted page: it starts with a title, and the page's debris is gone."""
    assert DOC.startswith("# ")
    assert "Skip to content" not in DOC and "\n---\n" not in DOC
    assert DOC.count("\n## ") >= 8


def test_every_json_example_is_a_valid_event() -> None:
    """Each ```json block is one event valid against its schema (so no `data: null`, no `done` without `type`)."""
    found = blocks("json")
    assert found
    for body in found:
        CHECK(json.loads(body))


def test_there_is_an_example_of_every_event_type() -> None:
    """All 11 event types of the contract, not 8."""
    shown = {json.loads(body)["type"] for body in blocks("json")}
    assert shown == set(EVENT_TYPES), set(EVENT_TYPES) ^ shown


def test_the_event_type_table_lists_exactly_the_contracts_types() -> None:
    table = DOC.split("## Event types", 1)[1].split("\n\n", 2)[1].splitlines()
    assert table[1].startswith("|---")
    listed = [re.findall(r"^\| `(\w+)`", row) for row in table[2:]]
    assert sorted(name for names in listed for name in names) == sorted(EVENT_TYPES)


def test_every_frame_example_is_valid_sse_of_valid_events() -> None:
    """Each ```text block parses as SSE: numeric increasing ids, `event:` equal to the
    data's `type`, every data a valid event; a block that starts with `skill_start`
    is a whole stream and follows the order rules."""
    found = blocks("text")
    assert found
    for body in found:
        frames, _ = parse_sse(body)
        assert frames, body
        ids = [int(f.id or "x") for f in frames]
        assert ids == sorted(set(ids)) and ids[0] >= 1
        events: list[dict[str, Any]] = []
        for frame in frames:
            event = frame.json
            CHECK(event)
            assert frame.event == event["type"]
            events.append(event)
        if events[0]["type"] == "skill_start":
            check_order(events)
            assert len({e["run_id"] for e in events}) == 1


@pytest.mark.anyio
async def test_the_documented_headers_are_the_ones_a_stream_sends(client: httpx.AsyncClient) -> None:
    """The ```http block's fixed headers are what the server sends, and every other one
    it lists is declared on the contract's `EventStream` response."""
    (block,) = blocks("http")
    lines = block.strip().splitlines()
    assert lines[0] == "HTTP/1.1 200 OK"
    documented = dict(line.split(": ", 1) for line in lines[1:])
    r = await client.post("/v1/skills/text.summarize/execute/stream", json={"inputs": {"text": "A b. C d."}})
    assert r.status_code == 200
    for name in ("Content-Type", "Cache-Control", "Connection", "X-Accel-Buffering"):
        assert r.headers[name] == documented[name], name
    declared = {h.lower() for h in SPEC["components"]["responses"]["EventStream"]["headers"]}
    for name in documented:
        assert name.lower() in declared | {"content-type", "connection"}, name
        assert name.lower() in {h.lower() for h in r.headers}, name
