"""Capability plugins through the ``skillrun.capabilities`` entry point group.

The plugins here are real installed distributions: a ``*.dist-info`` with
``entry_points.txt`` and a module, on ``sys.path``, found by importlib.metadata.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from skillrun.capabilities import builtin_registry, load_plugins

GROUP = "skillrun.capabilities.test"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("plug_")]:
        del sys.modules[name]


def _install(site: Path, dist: str, module: str, source: str, entry: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{entry}\n")


def test_plugins_register_capabilities_and_broken_ones_are_logged(site: Path, caplog: pytest.LogCaptureFixture) -> None:
    _install(
        site, "plug-good", "plug_good",
        """
        from skillrun.engine import Capability

        async def shout(args):
            return {"text": args["text"].upper()}

        CAPABILITIES = [Capability("plug.shout", shout, "Upper-case a text.")]
        """,
        "good = plug_good:CAPABILITIES",
    )
    _install(
        site, "plug-factory", "plug_factory",
        """
        from skillrun.engine import Capability

        async def one(args):
            return {"n": 1}

        def make():
            return Capability("plug.one", one)
        """,
        "factory = plug_factory:make",
    )
    _install(site, "plug-broken", "plug_broken", "raise ImportError('no such dependency')\n", "broken = plug_broken:X")
    _install(site, "plug-wrong", "plug_wrong", "THINGS = [1, 2]\n", "wrong = plug_wrong:THINGS")
    _install(
        site, "plug-dup", "plug_dup",
        """
        from skillrun.engine import Capability

        async def echo(args):
            return {}

        CAPS = [Capability("util.echo", echo)]
        """,
        "dup = plug_dup:CAPS",
    )
    registry = builtin_registry()
    with caplog.at_level(logging.INFO, logger="skillrun.capabilities.plugins"):
        added = load_plugins(registry, group=GROUP)
    assert sorted(added) == ["plug.one", "plug.shout"]
    assert "plug.shout" in registry and "plug.one" in registry
    errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "'broken' (plug_broken:X) failed to load" in errors
    assert "'wrong' (plug_wrong:THINGS) failed to load" in errors
    assert "'util.echo' is already registered" in errors


@pytest.mark.anyio
async def test_a_plugin_capability_runs_in_a_skill(site: Path) -> None:
    from engine_util import engine_for, run, skill

    _install(
        site, "plug-run", "plug_run",
        """
        from skillrun.engine import Capability

        async def shout(args):
            return {"text": args["text"].upper()}

        CAPABILITIES = [Capability("plug.shout2", shout, input_schema={"type": "object", "required": ["text"]})]
        """,
        "run = plug_run:CAPABILITIES",
    )
    registry = builtin_registry()
    load_plugins(registry, group=GROUP)
    s = skill(
        """
        id: plugged
        version: "1"
        steps:
          - {id: s, uses: plug.shout2, input: {text: hi}}
        outputs:
          text: {value: "${steps.s.text}"}
        """,
        registry,
    )
    outcome, _, _ = await run(engine_for(s, registry=registry), s)
    assert outcome.outputs == {"text": "HI"}
