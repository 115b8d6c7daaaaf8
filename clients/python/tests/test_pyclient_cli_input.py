"""``skillrun-client run`` asks a step that waits for input (``step_waiting``) in the
terminal, one line per field of the answer's schema, and sends the answer (against a real server)."""

from __future__ import annotations

import io
from typing import Any, Callable, Iterator

import httpx
import pytest
from rich.console import Console

from skillrun_client import StepWaitingEvent
from skillrun_client._cli import ask, main

from .conftest import API_KEY, Server

TEXT = "Skillrun runs skills. Each step is an event. Some steps wait for people."


def lines(*answers: str, seen: list[str] | None = None) -> Callable[[str], str]:
    """A terminal that types ``answers`` one per question (``seen`` collects the questions)."""
    typed: Iterator[str] = iter(answers)

    def read(question: str) -> str:
        if seen is not None:
            seen.append(question)
        return next(typed)

    return read


def approval(server: Server, read: Callable[[str], str] | None) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    args = ["--base-url", server.url, "--api-key", API_KEY, "run", "demo.approval", "--input", f"text={TEXT}"]
    code = main(args, stdout=out, console=console, read=read)
    return code, " ".join(out.getvalue().split())  # rich wraps long lines


def waiting(schema: dict[str, Any]) -> StepWaitingEvent:
    return StepWaitingEvent.model_validate(
        {"type": "step_waiting", "message": "m", "timestamp": "2026-01-01T00:00:00Z", "step_id": "ask",
         "trace_id": "t", "run_id": "r", "data": {"prompt": "How many?", "schema": schema, "answer_url": "/x"}}
    )  # fmt: skip


def test_the_question_is_asked_field_by_field_and_a_rejected_answer_asked_again(server: Server) -> None:
    """approve "maybe" (not a boolean) -> the server's 422 is shown and the question asked
    again; then approve "false", comment "too long" -> the run completes rejected."""
    seen: list[str] = []
    code, out = approval(server, lines("maybe", "", "false", "too long", seen=seen))
    assert code == 0, out
    assert seen == ["approve (boolean, required): ", "comment (string): "] * 2
    assert "ask waits for input: Publish this summary?" in out
    assert "value.approve" in out and "try again" in out
    assert "rejected" in out and "too long" in out


def test_an_empty_line_leaves_an_optional_field_out(server: Server) -> None:
    """approve "true" and an empty comment: the answer is {approve: true}; published."""
    code, out = approval(server, lines("true", ""))
    assert code == 0 and "published" in out


def test_a_step_answered_meanwhile_is_said_and_the_run_followed_to_its_end(server: Server) -> None:
    """Someone else answers while the terminal asks: the CLI's answer is 409, said as such,
    and the display goes on to the run's end (theirs decided it)."""

    def read(question: str) -> str:
        if question.startswith("approve"):
            run_id = httpx.get(f"{server.url}/v1/runs", params={"status": "waiting", "limit": 1},
                               headers={"x-api-key": API_KEY}, timeout=10).json()["runs"][0]["run_id"]
            r = httpx.post(f"{server.url}/v1/runs/{run_id}/input", json={"step_id": "ask", "value": {"approve": True}},
                           headers={"x-api-key": API_KEY}, timeout=30)
            assert r.status_code == 202, r.text
            return "false"
        return ""

    code, out = approval(server, read)
    assert code == 0 and "409 Conflict" in out and "published" in out


def test_the_terminal_is_asked_when_stdin_is_one(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``read``, a terminal on stdin is asked (rich's Console.input)."""
    typed = iter(["true", ""])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda *_: next(typed))
    code, out = approval(server, None)
    assert code == 0 and "published" in out


def test_a_schema_that_is_not_an_object_is_one_line() -> None:
    """{type: integer}: one line, read as an integer; a property whose schema is not an object is read as text."""
    assert ask(waiting({"type": "integer"}), lines("42")) == 42
    odd = {"type": "object", "properties": {"x": True, "n": {"type": "number"}}}
    assert ask(waiting(odd), lines("a", "2.5")) == {"x": "a", "n": 2.5}
