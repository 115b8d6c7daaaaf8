"""Issue 17, "Starting and restarting": ``./dev``, run against a stand-in virtualenv.

``./dev serve`` took 34 s on a fresh clone (it installed the whole test toolchain) and
8-12 s on every restart (it reinstalled), and showed setuptools' "editable
installation" box before the key. ``./dev test`` stopped at the first failing suite
without saying that the later ones (the JS suite) never ran.

The stand-ins (``.venv/bin/python``, ``skillrun``, ``npm``) record every call and
answer as told, so these tests check the script's own decisions, offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

FAKE_PYTHON = r"""#!/usr/bin/env bash
# Records its arguments; `-m pip` prints setuptools' box to stderr; `-m pytest` exits as told.
echo "python $*" >> "$CALLS"
case "$*" in
  *"-m pip"*) echo "*** editable installation box (setuptools) ***" >&2 ; exit "${PIP_EXIT:-0}" ;;
  *"-m pytest"*) echo "pytest ran in $(pwd)"; exit "$( [ "$(pwd)" = "$ROOTDIR" ] && echo "${SERVICE_EXIT:-0}" || echo "${CLIENT_EXIT:-0}")" ;;
  *"-c"*) exec /usr/bin/env python3 "$@" ;;
esac
"""

FAKE_SKILLRUN = """#!/usr/bin/env bash
echo "skillrun $*" >> "$CALLS"
echo "the key"
"""

FAKE_NPM = """#!/usr/bin/env bash
echo "npm $*" >> "$CALLS"
if [ "$1" = "test" ]; then exit "${JS_EXIT:-0}"; fi
"""


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the script with the dependency files it stamps and stand-in tools."""
    root = tmp_path / "repo"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / "clients" / "python").mkdir(parents=True)
    (root / "clients" / "js").mkdir(parents=True)
    shutil.copy(ROOT / "dev", root / "dev")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(ROOT / "clients" / "python" / "pyproject.toml", root / "clients" / "python" / "pyproject.toml")
    (root / "clients" / "js" / "package.json").write_text("{}\n")
    (root / "clients" / "js" / "package-lock.json").write_text("{}\n")
    _exe(root / ".venv" / "bin" / "python", FAKE_PYTHON)
    _exe(root / ".venv" / "bin" / "skillrun", FAKE_SKILLRUN)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _exe(bin_dir / "npm", FAKE_NPM)
    return root


def dev(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ, "PATH": f"{root.parent / 'bin'}:{os.environ['PATH']}",
        "CALLS": str(root / "calls.txt"), "ROOTDIR": str(root), **env,
    }
    return subprocess.run([str(root / "dev"), *args], cwd=root, env=full, capture_output=True, text=True, timeout=60)


def calls(root: Path) -> list[str]:
    path = root / "calls.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return [line for line in lines if not line.startswith("python -c")]


def test_serve_installs_only_the_runtime_dependencies(checkout: Path) -> None:
    """`./dev serve` installs `-e .` (no `[test]` extra, no client) and then serves."""
    r = dev(checkout, "serve", "--port", "9")
    assert r.returncode == 0, r.stderr
    made = calls(checkout)
    installs = [c for c in made if "pip install" in c and "--upgrade pip" not in c]
    assert installs == ["python -m pip install -q -e ."], made
    assert made[-1] == "skillrun serve --port 9"


def test_serve_skips_the_install_when_pyproject_is_unchanged_and_redoes_it_when_it_changes(checkout: Path) -> None:
    """A restart with the same `pyproject.toml` runs no pip at all; an edited one installs again."""
    assert dev(checkout, "serve").returncode == 0
    calls(checkout)
    r = dev(checkout, "serve")
    assert r.returncode == 0 and calls(checkout) == ["skillrun serve"], r.stderr
    with (checkout / "pyproject.toml").open("a") as f:
        f.write("\n# a new dependency\n")
    assert dev(checkout, "serve").returncode == 0
    assert "python -m pip install -q -e ." in calls(checkout)


def test_serve_shows_no_installer_output_before_the_key(checkout: Path) -> None:
    """setuptools' "editable installation" box stays in the install log; the key comes first."""
    r = dev(checkout, "serve")
    assert "editable installation" not in r.stderr + r.stdout
    assert r.stdout.startswith("the key")


def test_a_failed_install_shows_its_output_and_stops(checkout: Path) -> None:
    """When pip fails, its output is shown (it is the reason) and the server does not start."""
    r = dev(checkout, "serve", PIP_EXIT="1")
    assert r.returncode != 0
    assert "editable installation" in r.stderr and "failed" in r.stderr
    assert not any(c.startswith("skillrun") for c in calls(checkout))


def test_dev_test_runs_every_suite_and_ends_with_one_line_per_suite(checkout: Path) -> None:
    """The service suite fails: the Python client's and the JS suite still run, the
    summary has one line per suite, and the exit status is non-zero."""
    r = dev(checkout, "test", "-m", "not slow", SERVICE_EXIT="1")
    assert r.returncode != 0
    made = calls(checkout)
    assert "python -m pytest -m not slow" in made
    assert "npm test" in made
    assert sum(1 for c in made if c.startswith("python -m pytest")) == 2
    summary = r.stderr.split("=== summary", 1)[1].strip().splitlines()
    assert summary == [
        "FAILED  service (pytest) (exit 1)",
        "passed  python client (pytest, clients/python)",
        "passed  js client (npm test, clients/js)",
    ]


def test_dev_test_exits_non_zero_when_only_the_last_suite_fails(checkout: Path) -> None:
    """A failing JS suite alone makes `./dev test` (and so `.ci/run`) fail."""
    r = dev(checkout, "test", JS_EXIT="3")
    assert r.returncode != 0
    assert r.stderr.rstrip().endswith("FAILED  js client (npm test, clients/js) (exit 3)")
    ok = dev(checkout, "test")
    assert ok.returncode == 0 and "FAILED" not in ok.stderr


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` still ends in `./dev test`, whose exit status it passes on (set -e)."""
    text = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in text and text.rstrip().endswith("./dev test")
