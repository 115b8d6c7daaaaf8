"""The web console (issue 16): its committed bundle is current and the server serves it.

The browser tests are ``tests/test_console_browser.py``.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from conftest import REQUIRE_ALL, ROOT, asgi_client

CONSOLE = ROOT / "console"
STATIC = ROOT / "service" / "skillrun" / "console_static"

pytestmark = pytest.mark.anyio


def require_console_toolchain() -> str:
    """node, with console/node_modules (`npm ci` in console/); skip without, fail under REQUIRE_ALL."""
    node = shutil.which("node")
    if node and (CONSOLE / "node_modules" / "esbuild").is_dir():
        return node
    message = "the console needs node and `npm ci` in console/"
    if REQUIRE_ALL:
        pytest.fail(message + " (SKILLRUN_REQUIRE_ALL=1 forbids skipping)")
    pytest.skip(message)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_the_committed_bundle_is_what_the_source_builds(tmp_path: Path) -> None:
    """Rebuilding console/src into a temporary folder gives byte-for-byte the files in
    service/skillrun/console_static: an edit to the source without `npm run build` fails here."""
    node = require_console_toolchain()
    subprocess.run([node, "build.mjs", "--out", str(tmp_path)], cwd=CONSOLE, check=True, capture_output=True)
    assert _tree(tmp_path) == _tree(STATIC), "stale console bundle: run `npm run build` in console/"
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, STATIC, _tree(tmp_path), shallow=False)
    assert mismatch == [] and errors == [], "stale console bundle: run `npm run build` in console/"


def test_the_console_source_type_checks() -> None:
    """`tsc --noEmit` (strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes) is clean."""
    node = require_console_toolchain()
    tsc = CONSOLE / "node_modules" / "typescript" / "bin" / "tsc"
    result = subprocess.run([node, str(tsc), "-p", "tsconfig.json"], cwd=CONSOLE, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_ui_pages_need_no_key_and_are_never_cached(app_factory: Callable[..., Any]) -> None:
    """`/ui/`, `/ui/skills/demo.showcase`, `/ui/runs`, `/ui/runs/run_x`: index.html, no key, `no-cache`."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_factory()), base_url="http://t") as c:
        for path in ("/ui/", "/ui/skills/demo.showcase", "/ui/runs", "/ui/runs/run_x"):
            r = await c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            assert r.headers["cache-control"] == "no-cache"
            assert '<base href="/ui/">' in r.text
        r = await c.get("/ui")
        assert r.status_code == 308 and r.headers["location"] == "/ui/"


async def test_hashed_assets_are_immutable_with_their_content_type(app_factory: Callable[..., Any]) -> None:
    """Every asset index.html names is served with its type and `immutable`; an unknown one is 404."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_factory()), base_url="http://t") as c:
        names = [p.name for p in (STATIC / "assets").iterdir()]
        index = (await c.get("/ui/")).text
        for name in names:
            assert f"assets/{name}" in index
            r = await c.get(f"/ui/assets/{name}")
            assert r.status_code == 200
            kind = "text/javascript" if name.endswith(".js") else "text/css"
            assert r.headers["content-type"].startswith(kind)
            assert "immutable" in r.headers["cache-control"]
            assert r.headers["x-content-type-options"] == "nosniff"
        assert (await c.get("/ui/assets/main-NOPE.js")).status_code == 404
        assert (await c.post("/ui/")).status_code == 405


async def test_under_a_root_path_the_page_names_its_prefix(app_factory: Callable[..., Any]) -> None:
    """Behind a proxy mounting the app at `/prefix` (`skillrun serve --root-path /prefix`),
    `<base href>` is `/prefix/ui/`, so the relative asset and API URLs go through the proxy."""
    transport = httpx.ASGITransport(app=app_factory(), root_path="/prefix")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/ui/runs/run_x")
        assert '<base href="/prefix/ui/">' in r.text
        assert (await c.get("/ui")).headers["location"] == "/prefix/ui/"


async def test_ui_routes_are_not_operations_of_the_served_spec(app_factory: Callable[..., Any]) -> None:
    """The spec stays the only description of the API: no `/ui` path in `/openapi.json`."""
    async with asgi_client(app_factory()) as c:
        spec = (await c.get("/openapi.json")).json()
    assert not [p for p in spec["paths"] if p.startswith("/ui")]


def test_serve_cli_takes_a_root_path() -> None:
    """`skillrun serve --root-path /prefix` is accepted (uvicorn's root_path)."""
    from skillrun.cli import parser

    args = parser().parse_args(["serve", "--root-path", "/prefix/"])
    assert args.root_path == "/prefix/"
