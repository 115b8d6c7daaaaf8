"""Regenerate ``skillrun_client/_generated/`` from ``openapi/skillrun.yaml``.

    python clients/python/scripts/generate.py          # rewrite the committed files
    python clients/python/scripts/generate.py --check  # exit 1 when one is stale

``defaults.py`` holds the spec's ``info.x-skillrun-client-defaults`` (the behaviour table
both clients share: retries, backoff, idle timeout, longest ``Retry-After`` honoured).

The models are whatever the pinned datamodel-code-generator makes of the spec, plus
one deterministic rename: the inline ``data`` objects of the events come out as
``Data``, ``Data1``, … (numbered by parse order, so they shift whenever the spec
gains an event); they are renamed after their event (``StepStartEvent.data`` →
``StepStartData``), which keeps the names stable and readable.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path
from typing import Any

import yaml

CLIENT = Path(__file__).resolve().parent.parent
SPEC = CLIENT.parent.parent / "openapi" / "skillrun.yaml"
TARGET = CLIENT / "skillrun_client" / "_generated" / "models.py"
DEFAULTS_TARGET = CLIENT / "skillrun_client" / "_generated" / "defaults.py"

sys.path.insert(0, str(CLIENT))
from skillrun_client._codegen import MODEL_OPTIONS as OPTIONS  # noqa: E402  (one list for both)

HEADER = '''"""Models generated from openapi/skillrun.yaml. Do not edit: run clients/python/scripts/generate.py."""

'''


def _run_codegen(spec: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "models.py"
        subprocess.run(
            [sys.executable, "-m", "datamodel_code_generator", "--input", str(spec), *OPTIONS, "--output", str(out)],
            check=True,
            capture_output=True,
        )
        return out.read_text(encoding="utf-8")


def _rename_event_data(code: str) -> str:
    """``DataN`` → ``<Event>Data`` for the class used as ``data:`` of an ``<Event>Event``."""
    renames: dict[str, str] = {}
    for match in re.finditer(r"^class (\w+)Event\([^)]*\):\n(?:(?!^class ).*\n)*?    data: (Data\d*)\n", code, re.M):
        renames[match.group(2)] = match.group(1) + "Data"
    return _rename_names(code, renames)


def _rename_names(code: str, renames: dict[str, str]) -> str:
    """Rename identifiers only (never words inside docstrings or descriptions)."""
    lines = code.splitlines(keepends=True)
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    # Splice from the end so earlier positions stay valid.
    for tok in reversed([t for t in tokens if t.type == tokenize.NAME and t.string in renames]):
        row, col = tok.start
        line = lines[row - 1]
        lines[row - 1] = line[:col] + renames[tok.string] + line[col + len(tok.string):]
    return "".join(lines)


def render(spec: Path = SPEC) -> str:
    """The text the committed models file must have for ``spec``."""
    code = _run_codegen(spec)
    code = re.sub(r"\A(#.*\n)+\n?", "", code)  # the generator's comment names a temp path
    return HEADER + _rename_event_data(code)


def render_defaults(spec: Path = SPEC) -> str:
    """``defaults.py``: one ``Final`` constant per entry of ``info.x-skillrun-client-defaults``."""
    loaded: Any = yaml.safe_load(spec.read_text(encoding="utf-8"))
    table: dict[str, int | float] = loaded["info"]["x-skillrun-client-defaults"]
    lines = [
        '"""Client defaults from openapi/skillrun.yaml (info.x-skillrun-client-defaults).',
        "",
        'Do not edit: run clients/python/scripts/generate.py. The JS client generates the same table."""',
        "",
        "from typing import Final",
        "",
    ]
    lines += [f"{name.upper()}: Final = {value!r}" for name, value in table.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    args = parser.parse_args(argv)
    stale = 0
    for target, text in ((TARGET, render()), (DEFAULTS_TARGET, render_defaults())):
        if not args.check:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
        elif (target.read_text(encoding="utf-8") if target.exists() else "") != text:
            print(f"{target} is stale: run {Path(__file__).name}", file=sys.stderr)
            stale = 1
    return stale


if __name__ == "__main__":
    raise SystemExit(main())
