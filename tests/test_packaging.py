"""The packages install and work the way users install them.

Regression (issue 13, §4): ``pip install .`` without extras gave a server that did not
start — ``openapi_spec_validator`` was imported by the engine but arrived only through
the test extras, so ``skillrun serve`` failed with ModuleNotFoundError. Every artifact
here is built once (module-scoped fixtures) and installed into a new, empty venv or npm
project outside the checkout, with no extras and without this checkout on the path.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import venv
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from conftest import API_KEY, ROOT, Server, require_tool, start_server
from sse_util import check_order, parse_sse

SERVICE = ROOT / "service" / "skillrun"

pytestmark = pytest.mark.timeout(600)


def _clean_env() -> dict[str, str]:
    """The environment without anything that would import this checkout's code."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=480)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _wheel(project: Path, out: Path) -> Path:
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(project)])
    (wheel,) = out.glob("*.whl")
    return wheel


def _fresh_venv(where: Path, *requirements: str) -> Path:
    """A new venv (no system site-packages) with only ``requirements`` installed; its bin dir."""
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    bindir = where / "bin"
    _run([str(bindir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements])
    return bindir


def _stream_ticker(server: Server) -> list[dict[str, object]]:
    r = httpx.post(
        f"{server.url}/v1/skills/demo.ticker/execute/stream",
        json={"inputs": {"steps": 3, "delay_ms": 0}},
        headers={"x-api-key": API_KEY},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    frames, _ = parse_sse(r.text)
    events = [json.loads(f.data) for f in frames]
    check_order(events)
    return events


# ---------------------------------------------------------------- declared imports


def _third_party_imports(package: Path) -> set[str]:
    """Top-level names the package imports that are neither its own nor the standard library's."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != package.name}


def _declared(pyproject: Path, extra: str | None = None) -> set[str]:
    """The distributions of the runtime dependencies, or of one optional extra."""
    import tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    deps = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def _module_level_imports(package: Path) -> set[str]:
    """Top-level names imported when a module is imported (not inside a function, not
    under ``if TYPE_CHECKING``): these must be runtime dependencies, never an extra's."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != package.name}


def test_every_runtime_import_is_a_declared_dependency() -> None:
    """Each third-party module the service imports comes from a distribution it declares
    (or from one a declared distribution brings by its own extras, as connexion[uvicorn]
    brings uvicorn); only the optional ``otel`` and ``conformance`` extras' may be missing,
    and only where they are imported lazily (the server must start without them)."""
    by_module = packages_distributions()
    declared = _declared(ROOT / "pyproject.toml")
    brought_by_declared = {"uvicorn", "starlette"}  # connexion[uvicorn]; starlette is also declared
    # The extras' modules may be imported where they are used (observe/tracing.py, the
    # conformance command), never on import.
    extras = _declared(ROOT / "pyproject.toml", "otel") | {"opentelemetry-api"} | _conformance_extra()
    on_import = _module_level_imports(SERVICE)
    missing = []
    for module in sorted(_third_party_imports(SERVICE)):
        dists = {d.lower().replace("_", "-") for d in by_module.get(module, [module])}
        allowed = declared | brought_by_declared | (set() if module in on_import else extras)
        if not dists & allowed:
            missing.append(f"{module} (from {', '.join(sorted(dists))})")
    assert not missing, f"imported but not declared in pyproject.toml dependencies: {missing}"


def _conformance_extra() -> set[str]:
    return _declared(ROOT / "pyproject.toml", "conformance")


def _importers(package: Path, modules: set[str]) -> dict[str, bool]:
    """Each file (relative to the package) importing one of ``modules`` -> whether it
    does so on import (at module level) rather than inside a function."""
    out: dict[str, bool] = {}
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            if any(n.split(".")[0] in modules for n in names):
                rel = str(path.relative_to(package))
                out[rel] = out.get(rel, False) or id(node) in top
    return out


def _imports_conformance_on_import(path: Path) -> bool:
    """Whether a module outside the conformance package imports it at module level."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [a.name for a in node.names]
            if "conformance" in module.split(".") or (module in ("", "skillrun") and "conformance" in names):
                return True
        elif isinstance(node, ast.Import) and any(a.name.startswith("skillrun.conformance") for a in node.names):
            return True
    return False


def test_the_conformance_extra_is_imported_only_inside_the_command() -> None:
    """schemathesis, hypothesis and rich are the ``conformance`` extra, not dependencies: they
    are imported only inside functions of ``skillrun.conformance`` and of cli.py (whose
    ``conformance`` command checks for them first), and no module outside that package
    imports it on import, so ``skillrun serve`` never reaches them."""
    extra = _conformance_extra()
    assert extra == {"schemathesis", "hypothesis", "rich"}
    assert not extra & _declared(ROOT / "pyproject.toml")  # not runtime dependencies any more
    importers = _importers(SERVICE, extra)
    assert importers and all(p == "cli.py" or p.startswith("conformance/") for p in importers), importers
    assert [p for p, on_import in importers.items() if on_import] == []
    outside = [p for p in SERVICE.rglob("*.py") if "conformance" not in p.relative_to(SERVICE).parts]
    assert [str(p) for p in outside if _imports_conformance_on_import(p)] == []


def test_the_test_extra_holds_the_conformance_extra() -> None:
    """``./dev test`` (and so .ci/run) installs ``.[test]``: the suite runs the conformance
    command, so the test extra must bring every conformance requirement."""
    assert _conformance_extra() <= _declared(ROOT / "pyproject.toml", "test")
    dev = (ROOT / "dev").read_text()
    assert '-e ".[test]"' in dev and "./dev test" in (ROOT / ".ci" / "run").read_text()


# ---------------------------------------------------------------- the service wheel


@pytest.fixture(scope="module")
def service_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("service-wheel")
    wheel = _wheel(ROOT, base / "dist")
    return _fresh_venv(base / "venv", str(wheel))


@pytest.fixture(scope="module")
def wheel_server(service_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cwd = tmp_path_factory.mktemp("wheel-cwd")  # not the checkout: nothing of it on the path
    server = start_server(cwd, env=_clean_env(), command=[str(service_bin / "skillrun")])
    server.env = {"cwd": str(cwd)}
    yield server
    server.stop()


def test_installed_wheel_prints_its_version(service_bin: Path) -> None:
    from skillrun import __version__

    out = _run([str(service_bin / "skillrun"), "--version"])
    assert out.strip() == f"skillrun {__version__}"


def test_installed_wheel_without_extras_says_how_to_get_the_conformance_command(service_bin: Path) -> None:
    """`pip install .` without extras: `skillrun conformance URL` exits 2 with a sentence naming
    `pip install 'skillrun[conformance]'`, never a traceback (the server itself is tested below)."""
    missing = subprocess.run([str(service_bin / "python"), "-c", "import schemathesis"], env=_clean_env(),
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0  # really installed without the extra
    done = subprocess.run([str(service_bin / "skillrun"), "conformance", "http://127.0.0.1:9", "--key", "k"],
                          env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'skillrun[conformance]'" in done.stderr and "schemathesis" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_installed_wheel_serves_the_contract_docs_skills_and_a_stream(
    wheel_server: Server, service_bin: Path, server: Server
) -> None:
    where = _run([str(service_bin / "python"), "-c", "import skillrun; print(skillrun.__file__)"])
    assert str(ROOT) not in where  # the installed copy, not this checkout

    spec = httpx.get(f"{wheel_server.url}/openapi.json", timeout=10).json()
    # The wheel carries the whole contract: it serves what this checkout serves.
    assert spec == httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    source = yaml.safe_load((ROOT / "openapi" / "skillrun.yaml").read_text())
    assert set(source["components"]["schemas"]) <= set(spec["components"]["schemas"])  # every event
    assert httpx.get(f"{wheel_server.url}/v1/schemas/skill.json", timeout=10).json() == json.loads(
        (ROOT / "openapi" / "skill.schema.json").read_text()
    )

    docs = httpx.get(f"{wheel_server.url}/docs/", timeout=10)
    assert docs.status_code == 200 and "swagger-ui" in docs.text.lower()
    # The web console's committed bundle is package data: served with no build step.
    ui = httpx.get(f"{wheel_server.url}/ui/", timeout=10)
    script = re.search(r'src="(assets/main-[^"]+[.]js)"', ui.text)
    assert ui.status_code == 200 and script is not None
    assert httpx.get(f"{wheel_server.url}/ui/{script[1]}", timeout=10).status_code == 200

    skills = httpx.get(f"{wheel_server.url}/v1/skills", headers={"x-api-key": API_KEY}, timeout=10).json()
    bundled = {p.name.removesuffix(".yaml") for p in (SERVICE / "skills").glob("*.yaml")}
    assert {s["id"] for s in skills["skills"]} == bundled

    events = _stream_ticker(wheel_server)
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"


# ---------------------------------------------------------------- the clients


def test_python_client_wheel_streams_from_a_real_server(wheel_server: Server, tmp_path: Path) -> None:
    wheel = _wheel(ROOT / "clients" / "python", tmp_path / "dist")
    bindir = _fresh_venv(tmp_path / "venv", str(wheel))
    script = (
        "import sys\n"
        "from skillrun_client import Client\n"
        "with Client(base_url=sys.argv[1], api_key=sys.argv[2]) as c:\n"
        "    with c.stream('demo.ticker', inputs={'steps': 3, 'delay_ms': 0}) as s:\n"
        "        types = [e.type for e in s]\n"
        "print(','.join(types))\n"
    )
    out = _run([str(bindir / "python"), "-c", script, wheel_server.url, API_KEY], cwd=tmp_path)
    types = out.strip().split(",")
    assert types[0] == "skill_start" and types[-1] == "done"
    assert types.count("step_completed") == 3


def test_js_client_tarball_streams_from_a_real_server(wheel_server: Server, tmp_path: Path) -> None:
    npm = require_tool("npm")
    node = require_tool("node")
    js = ROOT / "clients" / "js"
    if not (js / "dist" / "index.js").exists():
        _run([npm, "run", "build", "--silent"], cwd=js)
    tarball = tmp_path / _run([npm, "pack", "--silent", "--pack-destination", str(tmp_path)], cwd=js).strip().splitlines()[-1]
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "user-app", "private": True, "type": "module"}))
    _run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", str(tarball)], cwd=project)
    (project / "main.mjs").write_text(
        "import { createClient } from 'skillrun-client';\n"
        "const client = createClient({ baseUrl: process.argv[2], apiKey: process.argv[3] });\n"
        "const types = [];\n"
        "for await (const e of client.stream('demo.ticker', { inputs: { steps: 3, delay_ms: 0 } })) types.push(e.type);\n"
        "console.log(types.join(','));\n"
    )
    version = _run([node, "--version"]).strip()
    out = _run([node, "main.mjs", wheel_server.url, API_KEY], cwd=project)
    types = out.strip().split(",")
    assert types[0] == "skill_start" and types[-1] == "done", (version, out)
    assert types.count("step_completed") == 3
