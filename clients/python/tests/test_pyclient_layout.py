"""The package's modules import one another without a cycle, type-only imports included."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "skillrun_client"


def imports_within_the_package() -> dict[str, set[str]]:
    """Top-level module → the package modules it imports anywhere (functions and
    ``if TYPE_CHECKING:`` included); ``._generated.models`` counts as ``_generated``."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        deps = {
            (node.module or "__init__").split(".")[0]
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.level == 1
        }
        graph[path.stem] = deps - {path.stem}
    return graph


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = imports_within_the_package()
    assert {"_client", "_streaming", "_transport", "_exceptions", "_types"} <= graph.keys()
    assert "_transport" in graph["_streaming"] and "_client" not in graph["_streaming"]
    assert "_types" not in graph["_exceptions"]
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
