"""Issue 17, "Starting and restarting": what a new user meets in the first minutes.

- Every restart generated a new key, so runs started before it became invisible (404)
  and the old key got 401, although runs survive a restart: the generated key is kept
  per data directory (0600, beside the database, its path printed).
- A `StarletteDeprecationWarning` came before the key.
- The default rate limit (60/minute) made a client polling a run once a second fail
  within a minute; requests without a valid key keep their own, lower limit.
- `skillrun --help` showed raw reStructuredText markup.
- `test_ctrl_c_exits_130_without_a_traceback` failed when the test process started
  with SIGINT ignored.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from conftest import ROOT, Server, start_server
from skillrun.devkey import load_or_create
from skillrun.settings import DEFAULT_RATE_LIMIT, DEFAULT_RATE_LIMIT_ANONYMOUS, Settings

NO_KEYS = {"SKILLRUN_API_KEYS": "", "SKILLRUN_API_KEYS_FILE": "", "SKILLRUN_DB": ""}
KEY_LINE = re.compile(r"API key[^\n]*?(?:kept in|generated)[^\n]*\n\s*\n\s*(\S+)")


def _printed_key(server: Server) -> str:
    match = KEY_LINE.search(server.log())
    assert match, server.log()
    return match.group(1)


def test_generated_key_is_kept_for_the_data_directory_and_runs_survive_a_restart(tmp_path: Path) -> None:
    """Two starts of `skillrun serve` without SKILLRUN_API_KEYS in one directory: the same
    key (written once, mode 0600, beside the database, its path printed), and the run
    started before the restart is still there for that key."""
    first = start_server(tmp_path, NO_KEYS)
    try:
        key = _printed_key(first)
        key_file = tmp_path / ".skillrun" / "api-key"
        assert str(key_file) in first.log()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key_file.read_text().strip() == key
        r = httpx.post(f"{first.url}/v1/skills/demo.ticker/execute", json={"inputs": {"steps": 1, "delay_ms": 0}},
                       headers={"x-api-key": key}, timeout=30)
        assert r.status_code == 200, r.text
        run_id = r.headers["x-run-id"]
    finally:
        first.terminate()
        first.proc.wait(30)
    second = start_server(tmp_path, NO_KEYS)
    try:
        assert _printed_key(second) == key
        assert "using the API key kept in" in second.log() and str(key_file) in second.log()
        r = httpx.get(f"{second.url}/v1/runs/{run_id}", headers={"x-api-key": key}, timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    finally:
        second.stop()


def test_key_file_is_per_data_directory_and_in_memory_stores_keep_none(tmp_path: Path) -> None:
    """`--db` elsewhere gets its own key; `:memory:` writes no key file at all."""
    a = load_or_create(str(tmp_path / "a" / "runs.db"))
    b = load_or_create(str(tmp_path / "b" / "runs.db"))
    assert a.created and b.created and a.key != b.key
    assert load_or_create(str(tmp_path / "a" / "runs.db")).key == a.key
    memory = load_or_create(":memory:")
    assert memory.path is None and memory.created


def test_an_empty_key_file_is_refused_with_its_path(tmp_path: Path) -> None:
    """A key file that holds nothing is the user's to fix: a message naming it, not a new key."""
    (tmp_path / "api-key").write_text("\n")
    with pytest.raises(ValueError, match="api-key: empty"):
        load_or_create(str(tmp_path / "skillrun.db"))


def test_serve_prints_no_warning_before_the_key(tmp_path: Path) -> None:
    """Nothing (no StarletteDeprecationWarning) comes before the key's notice."""
    s = start_server(tmp_path, NO_KEYS)
    try:
        before = s.log().split("No SKILLRUN_API_KEYS set", 1)[0]
        assert before.strip() == "", before
        assert "skillrun keys new" in s.log()
    finally:
        s.stop()


def test_help_has_no_restructuredtext_markup() -> None:
    """`skillrun --help` showed ``skillrun serve | validate | keys``: plain text now, every subcommand too."""
    for args in ([], ["serve"], ["validate"], ["keys"], ["keys", "new"], ["keys", "hash"]):
        out = subprocess.run([sys.executable, "-m", "skillrun", *args, "--help"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        assert "``" not in out and ":ref:" not in out and ".. " not in out, (args, out)
    top = subprocess.run([sys.executable, "-m", "skillrun", "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "serve" in top and "validate" in top and "keys" in top


def _client(app: Any, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                             base_url="http://testserver")


@pytest.mark.anyio
async def test_default_rate_limit_fits_polling_once_a_second_for_two_minutes(tmp_path: Path) -> None:
    """With the defaults, a key polling a run once a second for two minutes (120 requests,
    twice what 60/minute allowed), plus a few starts, is never refused."""
    from skillrun.http.app import create_app

    key = "poller-key-0123456789"
    app = create_app(Settings(api_keys=[key]))
    assert app.services.settings.rate_limit == DEFAULT_RATE_LIMIT
    async with _client(app, "10.9.0.1") as c:
        r = await c.post("/v1/skills/demo.ticker/execute/async", json={"inputs": {"steps": 1, "delay_ms": 0}},
                         headers={"x-api-key": key})
        assert r.status_code == 202
        for _ in range(120):
            r = await c.get(f"/v1/runs/{r.json()['run_id']}", headers={"x-api-key": key})
            assert r.status_code == 200, r.text
        assert int(r.headers["RateLimit-Limit"]) >= 300


@pytest.mark.anyio
async def test_requests_without_a_valid_key_keep_their_own_lower_limit() -> None:
    """Guessing stays as slow as before: an address without a valid key gets 429 after 60
    requests a minute, while a key holder on the same address goes on."""
    from skillrun.http.app import create_app

    key = "holder-key-0123456789"
    app = create_app(Settings(api_keys=[key]))
    assert DEFAULT_RATE_LIMIT_ANONYMOUS == "60/minute"
    async with _client(app, "10.9.0.2") as c:
        statuses = [(await c.get("/v1/skills", headers={"x-api-key": f"guess-{n}"})).status_code for n in range(61)]
        assert statuses[:60] == [401] * 60 and statuses[60] == 429
        assert (await c.get("/v1/skills", headers={"x-api-key": key})).status_code == 200


@pytest.mark.anyio
async def test_the_anonymous_limit_is_never_above_the_keys_limit() -> None:
    """SKILLRUN_RATE_LIMIT=3/minute with the default anonymous 60/minute: guessers get 3 too."""
    from skillrun.http.app import create_app

    app = create_app(Settings(api_keys=["k-0123456789"], rate_limit="3/minute"))
    async with _client(app, "10.9.0.3") as c:
        statuses = [(await c.get("/v1/skills")).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_anonymous_rate_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLRUN_RATE_LIMIT_ANONYMOUS", "5/minute")
    assert Settings.from_env().rate_limit_anonymous == "5/minute"


def test_readme_lists_the_endpoints_keys_and_rate_limits_a_new_user_needs() -> None:
    """The README left out health, skills and capabilities, and how to make keys."""
    readme = (ROOT / "README.md").read_text()
    for needed in ("GET /v1/health/live", "GET /v1/health/ready", "GET /v1/skills`", "GET /v1/skills/{id}",
                   "GET /v1/capabilities", "skillrun keys new", "SKILLRUN_API_KEYS", "SKILLRUN_RATE_LIMIT_ANONYMOUS",
                   "DELETE /v1/runs/{run_id}", "?wait=", "Idempotent-Replayed"):
        assert needed in readme, needed


def test_ctrl_c_test_passes_when_the_test_process_starts_with_sigint_ignored(tmp_path: Path) -> None:
    """The client's `test_ctrl_c_exits_130_without_a_traceback`, run by a pytest that
    inherited SIGINT ignored (as under nohup or a background job), passes."""
    client = ROOT / "clients" / "python"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "service"), str(client),
                                                        os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_pyclient_cli.py", "-q", "-p", "no:cacheprovider",
         "--no-cov", "-k", "test_ctrl_c_exits_130_without_a_traceback"],
        cwd=client, env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
