"""``skillrun-client run SKILL_ID``: run a skill and watch its events.

    skillrun-client run text.summarize --input text="Cats purr. Dogs bark." --input max_sentences:=1
    skillrun-client run demo.ticker --inputs-json inputs.json --json

``--input key=value`` gives a string, ``--input key:=json`` a JSON value (as httpie does).
Live display (rich): a spinner per running step, then ✓ completed, ↷ skipped,
⚠ degraded, ✗ failed, and the outputs as a table. ``--json`` prints each event as one
line of JSON instead. Exit code: 0 when the run completed, 1 when it did not, 2 for
usage errors and for requests the server refused, 130 on Ctrl-C, 141 when stdout closed
early (``| head``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TextIO, cast

from ._client import Client
from ._exceptions import SkillrunError
from ._types import Event, RunResult

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

MARKS = {
    "step_completed": ("✓", "green"),
    "step_skipped": ("↷", "dim"),
    "step_degraded": ("⚠", "yellow"),
    "step_failed": ("✗", "red"),
}


def parse_inputs(pairs: Sequence[str], inputs_json: str | None) -> dict[str, Any]:
    """Inputs from ``--inputs-json FILE`` (``-`` for stdin), then each ``--input``."""
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
            inputs[key] = value
    return inputs


@dataclass
class StepRow:
    label: str
    state: str = "running"  # or an event type from MARKS
    message: str = ""


@dataclass
class LiveView:
    """What the live display shows: one row per step, in the order they started."""

    skill_id: str
    rows: dict[str, StepRow] = field(default_factory=dict[str, StepRow])
    result: RunResult | None = None

    def apply(self, event: Event) -> None:
        data = getattr(event, "data", None)
        step_id = getattr(event, "step_id", None)
        if step_id is None:
            return
        index = getattr(data, "index", None)
        key = f"{step_id}[{index}]" if index is not None else step_id
        row = self.rows.setdefault(key, StepRow(key))
        if event.type in MARKS:
            row.state = event.type
        elif event.type == "step_start":
            row.state = "running"
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
                table.add_row(Spinner("dots"), Text(row.label, style="bold"), Text("running", style="dim"))
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


def run_json(client: Client, skill_id: str, inputs: dict[str, Any], out: TextIO) -> RunResult:
    with client.stream(skill_id, inputs) as stream:
        for event in stream:
            out.write(event.model_dump_json() + "\n")
            out.flush()
        return stream.result()


def run_live(client: Client, skill_id: str, inputs: dict[str, Any], console: Console) -> RunResult:
    from rich.live import Live

    view = LiveView(skill_id)
    with client.stream(skill_id, inputs) as stream, Live(view.render(), console=console, refresh_per_second=12) as live:
        for event in stream:
            view.apply(event)
            live.update(view.render())
        view.result = stream.result()
        live.update(view.render())
    return view.result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skillrun-client", description="Run Skillrun skills and watch their events.")
    parser.add_argument("--base-url", help="default: $SKILLRUN_BASE_URL or http://127.0.0.1:8080")
    parser.add_argument("--api-key", help="default: $SKILLRUN_API_KEY")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a skill and print its events live")
    run.add_argument("skill_id")
    run.add_argument("--input", action="append", default=[], metavar="KEY=VALUE", help="a string input (KEY:=JSON for any JSON value)")
    run.add_argument("--inputs-json", metavar="FILE", help="a JSON object of inputs ('-' reads stdin)")
    run.add_argument("--json", action="store_true", help="print one event per line as JSON")
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, console: Console | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = stdout or sys.stdout
    try:
        inputs = parse_inputs(args.input, args.inputs_json)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    if not args.json:
        try:
            from rich.console import Console
        except ImportError:
            parser.error("the live display needs rich: pip install 'skillrun-client[cli]' (or use --json)")
        console = console or Console(file=out)
    try:
        with Client(args.base_url, args.api_key) as client:
            if args.json:
                result = run_json(client, args.skill_id, inputs, out)
            else:
                assert console is not None
                result = run_live(client, args.skill_id, inputs, console)
    except SkillrunError as exc:
        print(f"skillrun-client: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C stops the watching; the run goes on on the server (see runs.events).
        print("skillrun-client: interrupted", file=sys.stderr)
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
