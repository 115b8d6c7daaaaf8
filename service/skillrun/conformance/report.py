"""Results of a conformance run: for people (a rich table) and for CI (JUnit XML, exit code)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Outcome = Literal["passed", "failed", "skipped"]


@dataclass
class Result:
    """One check: which rule it holds to, what happened, and why."""

    rule: str
    name: str
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0


def exit_code(results: list[Result]) -> int:
    return 1 if any(r.outcome == "failed" for r in results) else 0


def write_junit(results: list[Result], path: Path) -> None:
    """One testcase per check, named by its rule id (stable across versions)."""
    failed = sum(r.outcome == "failed" for r in results)
    skipped = sum(r.outcome == "skipped" for r in results)
    suite = ET.Element("testsuite", name="skillrun-conformance", tests=str(len(results)),
                       failures=str(failed), skipped=str(skipped),
                       time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=r.rule, name=r.name, time=f"{r.seconds:.3f}")
        if r.outcome == "failed":
            ET.SubElement(case, "failure", message=f"[{r.rule}] {r.detail[:300]}").text = r.detail
        elif r.outcome == "skipped":
            ET.SubElement(case, "skipped", message=r.detail)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def print_summary(results: list[Result]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Skillrun conformance")
    for column in ("rule", "check", "outcome", "detail"):
        table.add_column(column, overflow="fold")
    style = {"passed": "green", "failed": "bold red", "skipped": "yellow"}
    # Generated-case checks come one per operation: show the broken ones, count the rest.
    generated = [r for r in results if r.rule == "contract.schemathesis" and r.outcome == "passed"]
    if generated:
        table.add_row("contract.schemathesis", f"{len(generated)} operations", "[green]passed[/]", "")
    for r in results:
        if r not in generated:
            table.add_row(r.rule, r.name, f"[{style[r.outcome]}]{r.outcome}[/]", r.detail[:400])
    console = Console()
    console.print(table)
    counts = {k: sum(r.outcome == k for r in results) for k in style}
    broken = sorted({r.rule for r in results if r.outcome == "failed"})
    console.print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
                  + (f"; broken rules: {', '.join(broken)}" if broken else ""))
