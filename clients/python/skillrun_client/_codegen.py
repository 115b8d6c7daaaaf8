"""``skillrun-client codegen URL``: typed models and helpers for the skills a server serves.

Every loaded skill is part of the served contract: its ``POST /v1/skills/<id>/execute``
operation carries the skill's inputs schema (the request's ``inputs``) and outputs schema
(the result's ``outputs``). This module reads them from ``/openapi.json`` (public unless
the server sets ``SKILLRUN_PUBLIC_DOCS=0``), generates a pydantic model for each with
datamodel-code-generator (the options the client's own models use), and writes, per
skill, four typed helpers: ``run_<skill>`` / ``arun_<skill>`` (the outputs as the skill's
model, :class:`~skillrun_client.typed.TypedResult`) and ``stream_<skill>`` /
``astream_<skill>`` (a stream of typed events). The file is mypy --strict clean.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ._hints import install_hint

EXECUTE_PATH = re.compile(r"^/v1/skills/([^/{}]+)/execute$")

# The options of the client's own models (scripts/generate.py uses this list too).
MODEL_OPTIONS = [
    "--input-file-type", "openapi",
    "--output-model-type", "pydantic_v2.BaseModel",
    "--target-python-version", "3.11",
    # Enums as Literal aliases: `event.type == "done"` and `match` work without Enum classes.
    "--enum-field-as-literal", "all",
    "--use-type-alias",
    # OAS 3.0 `nullable: true` is the only way a field may be null.
    "--strict-nullable",
    "--use-annotated",
    "--use-union-operator",
    "--use-standard-collections",
    "--use-schema-description",
    "--field-constraints",
    "--disable-timestamp",
    # The built-in formatter has no version of its own, so output depends only on the pin.
    "--formatters", "builtin",
]  # fmt: skip
# A user's skills: also population by field name (an input named like a Python keyword
# gets an aliased field).
OPTIONS = [*MODEL_OPTIONS, "--allow-population-by-field-name"]


class CodegenError(Exception):
    """The spec cannot be turned into code (no skills, or the generator is missing)."""


@dataclass(frozen=True)
class Skill:
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]

    @property
    def name(self) -> str:
        """``text.summarize`` → ``TextSummarize`` (class names)."""
        return "".join(part[:1].upper() + part[1:] for part in _words(self.id))

    @property
    def snake(self) -> str:
        """``text.summarize`` → ``text_summarize`` (function names)."""
        return "_".join(part.lower() for part in _words(self.id))


def _words(skill_id: str) -> list[str]:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", skill_id) if w]
    return words if words and not words[0][0].isdigit() else ["skill", *words]


def skills_of(spec: dict[str, Any]) -> list[Skill]:
    """The served skills, from their concrete execute operations, sorted by id."""
    skills = []
    for path, item in cast(dict[str, Any], spec.get("paths", {})).items():
        match = EXECUTE_PATH.match(path)
        if match is None:
            continue
        operation: Any = item["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        result = operation["responses"]["200"]["content"]["application/json"]["schema"]
        outputs = {"type": "object"}
        for part in result.get("allOf", [])[1:]:
            outputs = part.get("properties", {}).get("outputs", outputs)
        skills.append(Skill(match.group(1), body["properties"]["inputs"], outputs))
    return sorted(skills, key=lambda s: s.id)


def models_source(skills: list[Skill]) -> str:
    """The pydantic models of every skill's inputs and outputs, from datamodel-code-generator."""
    schemas: dict[str, Any] = {}
    for skill in skills:
        schemas[f"{skill.name}Inputs"] = skill.inputs
        schemas[f"{skill.name}Outputs"] = skill.outputs
    if importlib.util.find_spec("datamodel_code_generator") is None:
        hint = install_hint("codegen", "datamodel-code-generator", __file__)
        raise CodegenError(f"codegen needs datamodel-code-generator (the client's [codegen] extra): {hint}")
    doc = {"openapi": "3.0.3", "info": {"title": "skills", "version": "1"}, "paths": {}, "components": {"schemas": schemas}}
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "skills.json", Path(tmp) / "models.py"
        source.write_text(json.dumps(doc), encoding="utf-8")
        command = [sys.executable, "-m", "datamodel_code_generator", "--input", str(source), *OPTIONS, "--output", str(out)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise CodegenError(f"datamodel-code-generator failed:\n{done.stderr.strip()}")
        return re.sub(r"\A(#.*\n)+\n?", "", out.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Param:
    name: str
    annotation: str
    default: str | None


def input_params(models: str, class_name: str) -> list[Param]:
    """The fields of the generated inputs model, as keyword parameters (``Annotated``
    metadata dropped: the model checks the values when the helper is called)."""
    tree = ast.parse(models)
    params: list[Param] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for field in node.body:
                if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
                    annotation = field.annotation
                    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name) and annotation.value.id == "Annotated":
                        annotation = cast(ast.Tuple, annotation.slice).elts[0]
                    default = None if field.value is None else ast.unparse(field.value)
                    params.append(Param(field.target.id, ast.unparse(annotation), default))
    # Required ones first: Python wants no parameter without a default after one with it.
    return sorted(params, key=lambda p: p.default is not None)


HELPERS = '''

def _{snake}_inputs({params}) -> dict[str, Any]:
    return typed_inputs({name}Inputs, {{{values}}})


def run_{snake}(client: Client, *, {params_kw}options: ExecuteOptions | None = None) -> TypedResult[{name}Outputs]:
    """Run ``{id}`` to its end: its outputs as ``{name}Outputs`` (RunFailedError unless it completed)."""
    result = client.execute({id!r}, _{snake}_inputs({args}), options=options)
    return typed_result(result, {name}Outputs)


async def arun_{snake}(client: AsyncClient, *, {params_kw}options: ExecuteOptions | None = None) -> TypedResult[{name}Outputs]:
    """The ``async`` twin of :func:`run_{snake}`."""
    result = await client.execute({id!r}, _{snake}_inputs({args}), options=options)
    return typed_result(result, {name}Outputs)


def stream_{snake}(client: Client, *, {params_kw}options: ExecuteOptions | None = None) -> Stream:
    """Start ``{id}`` and follow its typed events; ``typed_result(stream.result(), {name}Outputs)`` types the end."""
    return client.stream({id!r}, _{snake}_inputs({args}), options=options)


def astream_{snake}(client: AsyncClient, *, {params_kw}options: ExecuteOptions | None = None) -> AsyncStream:
    """The ``async`` twin of :func:`stream_{snake}`."""
    return client.stream({id!r}, _{snake}_inputs({args}), options=options)
'''

IMPORTS = """from typing import Any

from skillrun_client import AsyncClient, AsyncStream, Client, Stream
from skillrun_client.models import ExecuteOptions
from skillrun_client.typed import TypedResult, typed_inputs, typed_result

"""


def render(spec: dict[str, Any], source: str) -> str:
    """The module for every skill ``spec`` serves (``source`` names where it came from)."""
    skills = skills_of(spec)
    if not skills:
        raise CodegenError(f"{source} serves no skills (no POST /v1/skills/<id>/execute operation)")
    models = models_source(skills)
    first_class = re.search(r"^class ", models, re.M)
    at = first_class.start() if first_class else len(models)
    out = [f'"""Typed models and helpers for the skills served at {source}.\n\nGenerated by `skillrun-client codegen`; do not edit."""\n\n']
    out.append(models[:at] + IMPORTS + models[at:].rstrip("\n") + "\n")
    for skill in skills:
        params = input_params(models, f"{skill.name}Inputs")
        declared = ", ".join(f"{p.name}: {p.annotation}" + ("" if p.default is None else f" = {p.default}") for p in params)
        out.append(
            HELPERS.format(
                snake=skill.snake,
                name=skill.name,
                id=skill.id,
                params=f"*, {declared}" if params else "",
                params_kw=f"{declared}, " if params else "",
                values=", ".join(f"{p.name!r}: {p.name}" for p in params),
                args=", ".join(f"{p.name}={p.name}" for p in params),
            )
        )
    return "".join(out)


def spec_url(url: str) -> str:
    """A server's base URL → its ``/openapi.json``; a URL of a spec stays as it is."""
    return url if url.endswith((".json", ".yaml", ".yml")) else url.rstrip("/") + "/openapi.json"
