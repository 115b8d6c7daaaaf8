"""Issue 17 (CLI): ``--input`` typed by the skill's input schema, Ctrl-C names the run and
the command that follows it again, and the hint for rich works from a checkout."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from skillrun_client import Client
from skillrun_client import _cli
from skillrun_client._cli import coerce, main, parse_inputs, resume_hint, rich_hint

from .conftest import API_KEY, Server

SCHEMA = {
    "properties": {
        "steps": {"type": "integer"},
        "ratio": {"type": "number"},
        "loud": {"type": "boolean"},
        "tags": {"type": "array"},
        "opts": {"type": "object"},
        "maybe": {"type": ["integer", "null"]},
        "text": {"type": "string"},
        "anything": {},
        "nothing": {"type": "null"},
        "odd": {"type": "uuid"},
    }
}


def run_json(server: Server, *args: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    code = main(["--base-url", server.url, "--api-key", API_KEY, *args, "--json"], stdout=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_input_key_value_is_coerced_with_the_skills_input_schema(server: Server) -> None:
    """``--input steps=2`` was sent as the string "2" and rejected with 422; the skill's
    schema types ``steps`` as an integer, so it is the number 2."""
    code, events = run_json(server, "run", "demo.ticker", "--input", "steps=2", "--input", "delay_ms=0")
    assert code == 0 and events[-1]["outputs"] == {"ticks": 2}


def test_a_string_input_stays_a_string_and_raw_json_is_kept(server: Server) -> None:
    code, events = run_json(server, "run", "demo.showcase", "--input", "text=2024", "--input", "fail:=false")
    assert code == 0 and events[-1]["status"] == "completed"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("steps", "2", 2), ("steps", "two", "two"), ("steps", "2.5", "2.5"), ("ratio", "2", 2), ("ratio", "0.5", 0.5),
     ("loud", "true", True), ("loud", "yes", "yes"), ("tags", '["a"]', ["a"]), ("opts", '{"a": 1}', {"a": 1}),
     ("maybe", "null", None), ("maybe", "3", 3), ("text", "2", "2"), ("anything", "2", "2"), ("unknown", "2", "2"),
     ("nothing", "null", None), ("odd", "2", "2")],
)  # fmt: skip
def test_coerce_follows_the_declared_type(key: str, value: str, expected: Any) -> None:
    assert parse_inputs([f"{key}={value}"], None, SCHEMA) == {key: expected}


def test_coerce_without_a_schema_keeps_strings() -> None:
    assert parse_inputs(["steps=2"], None, None) == {"steps": "2"}
    assert parse_inputs(["steps=2"], None, {"properties": []}) == {"steps": "2"}
    assert coerce("2", {"type": "integer"}) == 2


def test_an_unknown_skill_with_plain_inputs_still_exits_2(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_json(server, "run", "no.such.skill", "--input", "steps=2")
    assert code == 2 and "404" in capsys.readouterr().err


def test_help_says_how_inputs_are_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "input schema" in text and "KEY:=JSON" in text


def _default_sigint() -> None:
    # A test process started with SIGINT ignored passes that on through exec.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_prints_the_run_id_and_the_command_that_follows_it_again(server: Server) -> None:
    """Ctrl-C said only "interrupted": the run goes on, but which run, and how to see it?"""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from skillrun_client._cli import main; raise SystemExit(main())",
         "--base-url", server.url, "--api-key", API_KEY, "run", "demo.ticker", "--input", "steps=6",
         "--input", "delay_ms=300", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint,
    )  # fmt: skip
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    match = re.search(rf"run ({first['run_id']}) goes on.*\n  skillrun-client --base-url (\S+) watch (\S+)( --after (\d+))?\n$", err.decode())
    assert match is not None, err
    assert match.group(2) == server.url and match.group(3) == first["run_id"]
    # The printed command works, and shows what came after the last event printed.
    args = ["watch", first["run_id"]] + (["--after", match.group(5)] if match.group(5) else [])
    code, events = run_json(server, *args)
    assert code == 0 and events[-1]["type"] == "done" and events[0]["type"] != "skill_start"


def test_ctrl_c_before_the_stream_opens(server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "open_stream", interrupted)
    assert main(["--base-url", server.url, "run", "demo.ticker", "--json"]) == 130
    assert capsys.readouterr().err == "skillrun-client: interrupted\n"


def test_resume_hint_before_the_run_is_named_and_without_options() -> None:
    with Client("http://127.0.0.1:1") as client:
        stream = client.stream("s", {})
        assert "before the server named the run" in resume_hint(None, stream)
        events = client.runs.events("run_1")
        assert resume_hint(None, events).endswith("\n  skillrun-client watch run_1")


def test_the_rich_hint_names_the_checkout_from_where_it_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``pip install 'skillrun-client[cli]'`` fails from a clone (the package is on no index):
    from a checkout the hint names the client's directory, relative to where it runs."""
    client_dir = Path(_cli.__file__).resolve().parent.parent
    monkeypatch.chdir(client_dir.parent.parent)
    hint = rich_hint()
    assert hint == "pip install -e './clients/python[cli]'"
    named = Path(re.search(r"'(.+)\[cli\]'", hint).group(1))  # type: ignore[union-attr]
    assert "cli" in tomllib.loads((named / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    monkeypatch.chdir(tmp_path)
    assert rich_hint().startswith("pip install -e '..") or rich_hint().startswith("pip install -e '/")
    monkeypatch.chdir(client_dir)
    assert rich_hint() == "pip install -e '.[cli]'"
    monkeypatch.setattr(_cli, "__file__", str(tmp_path / "pkg" / "_cli.py"))
    assert rich_hint() == "pip install rich"
