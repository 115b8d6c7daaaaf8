"""``skillrun-client run``: live display, --json, inputs, exit codes (against a real server)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from skillrun_client._cli import main, parse_inputs

from .conftest import API_KEY, Server


def run_cli(server: Server, *args: str, live: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120) if live else None
    code = main(["--base-url", server.url, "--api-key", API_KEY, "run", *args], stdout=out, console=console)
    return code, out.getvalue()


def test_json_prints_one_event_per_line_and_exits_0(server: Server) -> None:
    code, out = run_cli(server, "demo.ticker", "--input", "steps:=2", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and events[0]["type"] == "skill_start" and events[-1]["type"] == "done"
    assert events[-1]["outputs"] == {"ticks": 2}


def test_failed_run_exits_1(server: Server) -> None:
    code, out = run_cli(server, "demo.showcase", "--input", "text=Hello there. Bye.", "--input", "fail:=true", "--json")
    assert code == 1 and json.loads(out.splitlines()[-1])["status"] == "failed"


def test_live_display_marks_each_outcome_and_shows_outputs(server: Server) -> None:
    code, out = run_cli(
        server, "demo.showcase", "--input", "text=Write to a@b.co today. Thanks.", "--input", "fail:=true", live=True
    )
    assert code == 1
    for mark in ("✓", "↷", "⚠", "✗"):
        assert mark in out, out
    assert "summary" in out and "failed" in out and "capability_error" in out


def test_live_display_of_a_completed_run(server: Server) -> None:
    code, out = run_cli(server, "demo.ticker", "--input", "steps:=2", live=True)
    assert code == 0 and "tick[0]" in out and "tick[1]" in out and "ticks" in out
    # The status is one line, however narrow the outputs table is.
    assert re.search(r"^demo\.ticker: completed in \d+ ms$", out, re.MULTILINE), out


def test_json_into_a_closed_pipe_stops_quietly(server: Server) -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "w", buffering=1) as writer:

        class FirstLineThenClose(io.TextIOBase):
            """stdout of ``... --json | head -1``: the reader leaves after one line."""

            def write(self, text: str) -> int:
                writer.write(text)
                writer.flush()
                if not reader.closed:
                    reader.readline()
                    reader.close()
                return len(text)

            def flush(self) -> None:
                writer.flush()

            def fileno(self) -> int:
                return writer.fileno()

        out = FirstLineThenClose()
        code = main(["--base-url", server.url, "--api-key", API_KEY, "run", "demo.ticker", "--input", "steps:=50", "--json"], stdout=out)
        assert code == 141
        writer.write("x" * 100000)  # the descriptor now points at /dev/null
        writer.flush()


def test_live_display_uses_a_default_console(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--base-url", server.url, "--api-key", API_KEY, "run", "demo.ticker"]) == 0
    assert "ticks" in capsys.readouterr().out


def test_inputs_json_file_and_stdin(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps({"steps": 3}))
    code, out = run_cli(server, "demo.ticker", "--inputs-json", str(path), "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["outputs"] == {"ticks": 3}
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"steps": 1}'))
    assert parse_inputs(["delay_ms:=0", "x=y"], "-") == {"steps": 1, "delay_ms": 0, "x": "y"}


@pytest.mark.parametrize(
    "args",
    [["--input", "novalue"], ["--input", "=x"], ["--input", ":=1"], ["--input", "n:=notjson"], ["--inputs-json", "/nonexistent"]],
)
def test_bad_inputs_are_usage_errors(server: Server, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run_cli(server, "demo.ticker", *args)
    assert info.value.code == 2 and "error" in capsys.readouterr().err


def test_inputs_json_must_be_an_object(tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    path.write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        parse_inputs([], str(path))


def test_refused_request_exits_2(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(server, "no.such.skill", "--json")
    assert code == 2 and "404" in capsys.readouterr().err


def test_live_display_without_rich_asks_for_the_extra(server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "rich.console", None)
    with pytest.raises(SystemExit):
        main(["--base-url", server.url, "run", "demo.ticker"])
    assert "[cli] extra): pip install -e '" in capsys.readouterr().err  # from this checkout


def test_console_script_runs(server: Server) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from skillrun_client._cli import main; raise SystemExit(main())",
         "--base-url", server.url, "--api-key", API_KEY, "run", "demo.ticker", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["type"] == "done"


def test_console_script_into_head_exits_without_a_traceback(server: Server) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from skillrun_client._cli import main; raise SystemExit(main())",
         "--base-url", server.url, "--api-key", API_KEY, "run", "demo.ticker", "--input", "steps:=300", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["type"] == "skill_start"
    proc.stdout.close()  # what `| head -1` does after its line
    assert proc.wait(60) == 141
    assert proc.stderr.read() == b""
    proc.stderr.close()


def _default_sigint() -> None:
    # What a terminal gives the CLI. A test process started with SIGINT ignored (a
    # background job, nohup, some CI runners) passes that on through exec, and Python
    # then installs no KeyboardInterrupt handler: the child would never see Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_without_a_traceback(server: Server) -> None:
    """Also when this test process started with SIGINT ignored: the child gets default handling."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from skillrun_client._cli import main; raise SystemExit(main())",
         "--base-url", server.url, "--api-key", API_KEY, "run", "demo.ticker", "--input", "steps:=20",
         "--input", "delay_ms:=500", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.readline()  # the run is under way
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.startswith(b"skillrun-client: interrupted; run ") and b"Traceback" not in err


def test_ctrl_c_while_writing_an_event(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    class CtrlC(io.StringIO):
        def write(self, text: str) -> int:
            raise KeyboardInterrupt

    code = main(["--base-url", server.url, "--api-key", API_KEY, "run", "demo.ticker", "--json"], stdout=CtrlC())
    assert code == 130 and "interrupted" in capsys.readouterr().err


def test_live_view_keeps_a_retrying_step_running() -> None:
    from skillrun_client._cli import LiveView
    from skillrun_client.models import StepRetryingEvent

    view = LiveView("s")
    retrying = StepRetryingEvent.model_validate(
        {"type": "step_retrying", "message": "attempt 1 failed", "timestamp": "2026-01-01T00:00:00Z", "step_id": "a",
         "trace_id": "t", "run_id": "r", "data": {"attempt": 1, "error": {"kind": "k", "message": "m"}, "delay_ms": 5}}
    )  # fmt: skip
    view.apply(retrying)
    assert view.rows["a"].state == "running" and view.rows["a"].message == "attempt 1 failed"
