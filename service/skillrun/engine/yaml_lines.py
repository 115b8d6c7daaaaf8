"""Line-aware YAML: a safe loader whose mappings remember their lines (and their keys').

So every problem in a skill file can be named by ``file:line``. YAML 1.2 booleans
only, and a duplicate key is an error, not a silent overwrite.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import yaml


class YamlProblem(Exception):
    """The text is not YAML (or has a duplicate key), at ``line``."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class LineMap(dict[str, Any]):
    """A mapping that remembers the YAML line of itself and of each key."""

    line: int = 1
    key_lines: dict[str, int]


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader (libyaml's parser when present: ~10x faster on big files)."""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    out = LineMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)

# YAML 1.2 booleans: only true/false. YAML 1.1 reads `on:` (retry.on) as the key
# True, and yes/no/on/off as booleans, which surprises everyone who writes them.
_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load(text: str) -> Any:
    """The document in ``text``; raises ``YamlProblem``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # At the end of the file the mark is past the last line: name the last line.
        line = min(mark.line + 1, max(1, len(text.splitlines()))) if mark else 1
        raise YamlProblem(line, f"invalid YAML: {exc.problem}{_hint(text, line)}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"invalid YAML: {exc}") from None


def _hint(text: str, line: int) -> str:
    """What most often causes the error on ``line``: an unquoted expression (YAML reads
    its ``:`` or ``{`` as structure, not as part of the expression)."""
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    if "${" not in here:
        return ""
    return (
        "; an expression is YAML text too: quote the whole value when it holds ':', '{', '#' or"
        " starts with a quote, e.g. x: \"${ inputs.a ? 'yes: 1' : 'no' }\" (or use a block scalar: x: >-)"
    )


def line_of(doc: Any, path: Iterable[Any]) -> int:
    """The line of the deepest node on ``path`` that remembers one."""
    line = getattr(doc, "line", 1)
    node = doc
    for part in path:
        if isinstance(node, LineMap) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
            line = getattr(node, "line", line)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line
