"""``skillrun-client run SKILL_ID``: run a skill and watch its events.

    skillrun-client run text.summarize --input text="Cats purr. Dogs bark." --input max_sentences=1
    skillrun-client run demo.ticker --inputs-json inputs.json --json
    skillrun-client watch RUN_ID --after 5          # follow a run again (after Ctrl-C, say)
    skillrun-client codegen http://127.0.0.1:8080 -o myskills.py   # typed helpers per served skill

``--input key=value`` is read as the skill's input schema says (``steps=2`` is the number
2 when ``steps`` is an integer; the schema comes from ``GET /v1/skills/{id}``); ``--input
key:=json`` is any raw JSON value (as httpie does). Live display (rich): a spinner per
running step, then ✓ completed, ↷ skipped, ⚠ degraded, ✗ failed, and the outputs as a
table. A running step's text (``step_delta``: a model's tokens) grows under its row, its
progress beside it; a retry or fallback clears the text of the failed attempt. A step
that waits for input (``step_waiting``) is asked in the terminal, one line
per field of its answer's schema, and the answer sent (asked again if the server finds
it does not match). ``--json`` prints each event as one line of JSON instead, ``step_delta``
included (and asks nothing: answer with ``runs.input``). Exit code: 0 when the run
completed, 1 when it did not, 2 for usage errors and for requests the server refused, 130
on Ctrl-C (which prints the run id and the command that follows it again), 141 when
stdout closed early (``| head``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO, cast

from ._client import Client
from ._exceptions import ConflictError, SkillrunError, ValidationError
from ._generated.models import StepDeltaEvent, StepWaitingEvent
from ._hints import install_hint
from ._streaming import Stream
from ._text import StepTexts
from ._types import RunResult, StreamEvent

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

MARKS = {
    "step_completed": ("✓", "green"),
    "step_skipped": ("↷", "dim"),
    "step_degraded": ("⚠", "yellow"),
    "step_failed": ("✗", "red"),
}


def parse_inputs(pairs: Sequence[str], inputs_json: str | None, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inputs from ``--inputs-json FILE`` (``-`` for stdin), then each ``--input``;
    ``key=value`` is coerced to the type ``schema`` (the skill's inputs) gives ``key``."""
    inputs: dict[str, Any] = {}
    if inputs_json is not None:
        text = sys.stdin.read() if inputs_json == "-" else Path(inputs_json).read_text(encoding="utf-8")
        loaded: Any = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError(f"{inputs_json}: inputs must be a JSON object")
        inputs.update(cast(dict[str, Any], loaded))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or key == ":":
            raise ValueError(f"--input {pair!r}: expected key=value or key:=json")
        if key.endswith(":"):
            inputs[key[:-1]] = json.loads(value)
        else:
            inputs[key] = coerce(value, _property(schema, key))
    return inputs


def _property(schema: dict[str, Any] | None, key: str) -> dict[str, Any]:
    properties: Any = (schema or {}).get("properties")
    found: Any = properties.get(key) if isinstance(properties, dict) else None
    return cast(dict[str, Any], found) if isinstance(found, dict) else {}


def coerce(value: str, prop: dict[str, Any]) -> Any:
    """``value`` as the JSON type ``prop`` declares; the string itself when it declares a
    string (or nothing), or when ``value`` is not of its type (the server's 422 then names
    the field)."""
    declared: Any = prop.get("type")
    types = set(declared) if isinstance(declared, list) else {declared}
    if "string" in types or None in types:
        return value
    if types & {"integer", "number", "boolean", "array", "object", "null"}:
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            return value
        return parsed if _json_type(parsed) in types or (_json_type(parsed) == "integer" and "number" in types) else value
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {float: "number", list: "array", dict: "object", str: "string"}
    return names.get(type(value), "null")


# The lines of a running step's text the live view shows: its tail, so the display keeps its height.
TEXT_LINES = 4


@dataclass
class StepRow:
    label: str
    state: str = "running"  # or an event type from MARKS
    message: str = ""
    text: str = ""  # the running attempt's text so far (step_delta)
    progress: float | None = None  # the latest step_delta progress, 0..1

    def status(self) -> str:
        return "running" if self.progress is None else f"running {self.progress:.0%}"

    def tail(self) -> str:
        return "\n".join(self.text.rstrip("\n").split("\n")[-TEXT_LINES:])


@dataclass
class LiveView:
    """What the live display shows: one row per step, in the order they started."""

    skill_id: str
    rows: dict[str, StepRow] = field(default_factory=dict[str, StepRow])
    result: RunResult | None = None
    texts: StepTexts = field(default_factory=StepTexts)

    def apply(self, event: StreamEvent) -> None:
        data = getattr(event, "data", None)
        step_id = getattr(event, "step_id", None)
        if step_id is None:
            return
        index = getattr(data, "index", None)
        key = f"{step_id}[{index}]" if index is not None else step_id
        row = self.rows.setdefault(key, StepRow(key))
        for chunk in self.texts.observe(event):  # a restart clears a failed attempt's text
            row.text = "" if chunk.restart else row.text + chunk.text
        if isinstance(event, StepDeltaEvent):
            row.progress = event.data.delta.progress if event.data.delta.progress is not None else row.progress
            return  # a delta's message ("made output") would hide the last real one
        if event.type in MARKS:
            row.state, row.text, row.progress = event.type, "", None  # the outputs table shows the result
        elif event.type == "step_start":
            row.state, row.progress = "running", None
        row.message = event.message

    def render(self) -> RenderableType:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        for row in self.rows.values():
            if row.state in MARKS:
                mark, style = MARKS[row.state]
                table.add_row(Text(mark, style=style), Text(row.label, style="bold"), Text(row.message, style="dim"))
            else:
                table.add_row(Spinner("dots"), Text(row.label, style="bold"), Text(row.status(), style="dim"))
                if row.text:
                    table.add_row("", "", Text(row.tail(), style="cyan"))
        parts: list[RenderableType] = [Text(f"{self.skill_id}", style="bold underline"), table]
        if self.result is not None:
            parts.extend(outcome(self.result))
        return Group(*parts)


def outcome(result: RunResult) -> list[RenderableType]:
    """The run's status line, then its outputs as a table."""
    from rich.table import Table
    from rich.text import Text

    style = "green" if result.status == "completed" else "red"
    # A line of its own: as the table's title it would wrap to the (often narrow) table.
    status = Text.assemble(f"{result.skill_id}: ", (result.status, style), f" in {result.duration_ms:.0f} ms")
    table = Table()
    table.add_column("output")
    table.add_column("value")
    for name, value in result.outputs.items():
        table.add_row(name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    if result.error is not None:
        table.add_row("[red]error[/]", f"{result.error.kind}: {result.error.message}")
    return [status, table]


def run_json(stream: Stream, out: TextIO) -> RunResult:
    with stream:
        for event in stream:
            out.write(event.model_dump_json() + "\n")
            out.flush()
        return stream.result()


# Asks a waiting step's question and sends the answer (``terminal_answerer``).
Answerer = Callable[[StepWaitingEvent], None]


def run_live(stream: Stream, title: str, console: Console, answer: Answerer | None = None) -> RunResult:
    """The live display; with ``answer``, a step waiting for input is asked in the terminal."""
    from rich.live import Live

    view = LiveView(title)
    with stream, Live(view.render(), console=console, refresh_per_second=12) as live:
        for event in stream:
            view.apply(event)
            live.update(view.render())
            if answer is not None and isinstance(event, StepWaitingEvent):
                live.stop()  # the question needs the terminal
                answer(event)
                live.start()
        view.result = stream.result()
        live.update(view.render())
    return view.result


def ask(event: StepWaitingEvent, read: Callable[[str], str]) -> Any:
    """The answer to a ``step_waiting`` question, read line by line: for an object schema
    one line per property (read as its type says; an empty line leaves an optional one
    out), else one value. The server checks it against the schema."""
    schema: dict[str, Any] = dict(event.data.schema_ or {})
    properties: Any = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        return coerce(read(f"{event.data.prompt} "), schema)
    required = set(schema.get("required") or [])
    value: dict[str, Any] = {}
    for name, prop in properties.items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type", "any")
        line = read(f"{name} ({kind}{', required' if name in required else ''}): ")
        if line == "" and name not in required:
            continue
        value[name] = coerce(line, prop)
    return value


def terminal_answerer(client: Client, console: Console, read: Callable[[str], str]) -> Answerer:
    """Asks each waiting step's question and sends the answer (asking again after a 422)."""

    def answer(event: StepWaitingEvent) -> None:
        console.print(f"[bold]{event.step_id}[/] waits for input: {event.data.prompt}")
        while True:
            value = ask(event, read)
            try:
                client.runs.input(event.run_id, event.step_id, value, index=event.data.index)
                return
            except ValidationError as bad:
                console.print(f"[red]{bad}[/]; try again")
            except ConflictError as gone:  # answered elsewhere, or it timed out meanwhile
                console.print(f"[yellow]{gone}[/]")
                return

    return answer


def rich_hint() -> str:
    """How to get rich (the ``cli`` extra), as a command that works where this runs."""
    return install_hint("cli", "rich", __file__)


def resume_hint(argv_base_url: str | None, stream: Stream) -> str:
    """The command that follows the interrupted run again, after the last event shown."""
    if stream.run_id is None:
        return "skillrun-client: interrupted before the server named the run"
    command = ["skillrun-client"]
    if argv_base_url:
        command += ["--base-url", argv_base_url]
    command += ["watch", stream.run_id]
    if stream.last_event_id:
        command += ["--after", stream.last_event_id]
    return f"skillrun-client: interrupted; run {stream.run_id} goes on. Follow it again with:\n  {' '.join(command)}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skillrun-client", description="Run Skillrun skills and watch their events.")
    parser.add_argument("--base-url", help="default: $SKILLRUN_BASE_URL or http://127.0.0.1:8080")
    parser.add_argument("--api-key", help="default: $SKILLRUN_API_KEY")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a skill and print its events live")
    run.add_argument("skill_id")
    run.add_argument(
        "--input", action="append", default=[], metavar="KEY=VALUE",
        help="an input, read as the skill's input schema types it (steps=2 is a number when steps is an "
        "integer; text=2 stays a string); KEY:=JSON sends any raw JSON value as is (tags:='[\"a\"]')",
    )  # fmt: skip
    run.add_argument("--inputs-json", metavar="FILE", help="a JSON object of inputs ('-' reads stdin)")
    run.add_argument("--json", action="store_true", help="print one event per line as JSON")
    codegen = commands.add_parser(
        "codegen", help="write typed models and helpers (run_<skill>, stream_<skill>) for the skills a server serves"
    )
    codegen.add_argument("url", help="the server (its /openapi.json is read; no key needed unless it hides its docs)")
    codegen.add_argument("-o", "--output", metavar="FILE", help="where to write the module (default: stdout)")
    watch = commands.add_parser("watch", help="follow a run's events (replayed, then live until it ends)")
    watch.add_argument("run_id")
    watch.add_argument("--after", metavar="EVENT_ID", help="only the events after this id")
    watch.add_argument("--json", action="store_true", help="print one event per line as JSON")
    return parser


def open_stream(client: Client, args: argparse.Namespace, inputs: dict[str, Any]) -> tuple[Stream, str]:
    """The stream the command follows, and the live display's title. ``inputs`` were
    parsed (and checked) before any request; plain ``key=value`` pairs are read again
    with the skill's input schema."""
    if args.command == "watch":
        return client.runs.events(args.run_id, after=args.after), args.run_id
    if any(":=" not in pair for pair in args.input):
        try:
            schema = client.skills.get(args.skill_id).inputs
        except SkillrunError:
            schema = None  # not loaded, or unreachable: the run itself says so
        inputs = {**inputs, **parse_inputs(args.input, None, schema)}
    return client.stream(args.skill_id, inputs), args.skill_id


def codegen(args: argparse.Namespace, out: TextIO) -> int:
    """``skillrun-client codegen URL [-o FILE]``."""
    import httpx

    from ._codegen import CodegenError, render, spec_url

    url = spec_url(args.url)
    headers = {"x-api-key": args.api_key} if args.api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=30, follow_redirects=True)
        response.raise_for_status()
        code = render(response.json(), url)
    except (httpx.HTTPError, ValueError, CodegenError) as exc:
        print(f"skillrun-client: codegen from {url}: {exc}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(code, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        out.write(code)
    return 0


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    console: Console | None = None,
    read: Callable[[str], str] | None = None,
) -> int:
    """``read`` reads an answer line (default: the terminal, when stdin is one)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = stdout or sys.stdout
    if args.command == "codegen":
        return codegen(args, out)
    inputs: dict[str, Any] = {}
    if args.command == "run":
        try:  # usage errors first, before any request
            inputs = parse_inputs(args.input, args.inputs_json)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
    if not args.json:
        try:
            from rich.console import Console
        except ImportError:
            parser.error(f"the live display needs rich (the client's [cli] extra): {rich_hint()} (or use --json)")
        console = console or Console(file=out)
    stream: Stream | None = None
    try:
        with Client(args.base_url, args.api_key) as client:
            stream, title = open_stream(client, args, inputs)
            if args.json:
                result = run_json(stream, out)
            else:
                assert console is not None
                if read is None and sys.stdin.isatty():
                    read = console.input
                answer = terminal_answerer(client, console, read) if read is not None else None
                result = run_live(stream, title, console, answer)
    except SkillrunError as exc:
        print(f"skillrun-client: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C stops the watching; the run goes on on the server: say how to follow it again.
        print(resume_hint(args.base_url, stream) if stream is not None else "skillrun-client: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (`| head`). Stop quietly, with the shell's code for SIGPIPE, not
        # 1 ("failed"); /dev/null under the descriptor keeps the flush at exit from failing again.
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, out.fileno())
        os.close(null)
        return 141
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":  # pragma: no cover - `python -m skillrun_client._cli`
    raise SystemExit(main())
