"""API keys: from SKILLRUN_API_KEYS or a file of SHA-256 hashes; never an open server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import httpx
import pytest
from conftest import API_KEY, Server
from skillrun.http.app import create_app
from skillrun.keys import hash_key
from skillrun.settings import Settings

SUMMARIZE = "/v1/skills/text.summarize"
BODY = {"inputs": {"text": "Keys open doors. Wrong keys do not."}}
ENDPOINTS = ["/execute", "/execute/stream"]


@pytest.fixture
def client(shared_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return shared_client


def skillrun(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skillrun", *args], input=stdin, capture_output=True, text=True, timeout=30
    )


def statuses(url: str, keys: list[str | None]) -> list[int]:
    """The status of /execute and the stream for each key (None: no header)."""
    out = []
    with httpx.Client(base_url=url, timeout=10) as c:
        for key in keys:
            headers = {} if key is None else {"x-api-key": key}
            for endpoint in ENDPOINTS:
                r = c.post(SUMMARIZE + endpoint, json=BODY, headers=headers)
                if r.status_code == 401:
                    assert r.headers["content-type"].startswith("application/problem+json")
                out.append(r.status_code)
    return out


@pytest.mark.anyio
async def test_keys_from_env_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLRUN_API_KEYS", " alpha-key , beta-key,,")
    monkeypatch.delenv("SKILLRUN_API_KEYS_FILE", raising=False)
    monkeypatch.setenv("SKILLRUN_DB", ":memory:")  # no lifespan here to open a file store
    settings = Settings.from_env()
    assert settings.api_keys == ["alpha-key", "beta-key"]
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for key, want in [("alpha-key", 200), ("beta-key", 200), ("gamma-key", 401), ("alpha-key,beta-key", 401),
                          (" alpha-key", 401), ("ALPHA-KEY", 401)]:
            for endpoint in ENDPOINTS:
                r = await c.post(SUMMARIZE + endpoint, json=BODY, headers={"x-api-key": key})
                assert r.status_code == want, (key, endpoint, r.text)


@pytest.mark.anyio
async def test_key_in_query_string_is_not_accepted(client: httpx.AsyncClient) -> None:
    client.headers.pop("x-api-key")
    # Keys in URLs end up in access logs: only the header counts.
    r = await client.post(SUMMARIZE + "/execute", params={"x-api-key": API_KEY}, json=BODY)
    assert r.status_code == 401


def test_keys_hash_prints_the_sha256(tmp_path: Path) -> None:
    out = skillrun("keys", "hash", "s3cret-key")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == hash_key("s3cret-key")
    assert re.fullmatch(r"[0-9a-f]{64}\n", out.stdout)
    # From stdin too (keeps the key out of the shell history and `ps`).
    piped = skillrun("keys", "hash", stdin="s3cret-key\n")
    assert piped.returncode == 0 and piped.stdout == out.stdout
    empty = skillrun("keys", "hash", stdin="")
    assert empty.returncode != 0 and "no key" in empty.stderr


def test_keys_file_of_hashes_from_keys_hash(tmp_path: Path, server_factory: Callable[..., Server]) -> None:
    """The file holds only what `skillrun keys hash` prints; the plain keys never touch disk.
    SKILLRUN_API_KEYS works beside it."""
    keys = ["file-key-one", "file-key-two"]
    lines = ["# keys for the test", ""]
    for k in keys:
        out = skillrun("keys", "hash", k)
        assert out.returncode == 0
        lines.append(out.stdout.strip() + "   # " + k[:4])
    path = tmp_path / "keys.sha256"
    path.write_text("\n".join(lines) + "\n")
    assert not any(k in path.read_text() for k in keys)

    s = server_factory(env={"SKILLRUN_API_KEYS": "from-env", "SKILLRUN_API_KEYS_FILE": str(path)})
    assert statuses(s.url, [keys[0], keys[1], "from-env", None, "wrong", hash_key(keys[0]), API_KEY]) == [
        200, 200, 200, 200, 200, 200, 401, 401, 401, 401, 401, 401, 401, 401,
    ]
    # A key file counts as configured: no key is generated.
    assert "generated an API key" not in s.log()


def test_keys_file_alone_is_enough(tmp_path: Path) -> None:
    path = tmp_path / "keys.sha256"
    path.write_text(hash_key("only-in-file") + "\n")
    services = create_app(Settings(api_keys_file=path)).services  # type: ignore[attr-defined]
    assert services.keys.identify("only-in-file") is not None
    assert services.keys.identify("other") is None


def test_keys_file_with_a_plain_key_is_refused_at_start(tmp_path: Path) -> None:
    """A plain key in the hash file is a mistake to report, not a key to accept."""
    path = tmp_path / "keys.sha256"
    path.write_text(hash_key("fine") + "\nmy-plain-key\n")
    with pytest.raises(ValueError, match=r"keys.sha256:2: not a SHA-256"):
        create_app(Settings(api_keys_file=path))


def test_serve_without_keys_generates_one_and_requires_it(server_factory: Callable[..., Server]) -> None:
    s = server_factory(env={"SKILLRUN_API_KEYS": "", "SKILLRUN_API_KEYS_FILE": ""})
    match = re.search(r"generated an API key[^\n]*\n\s*\n\s*(\S+)", s.log())
    assert match, s.log()
    key = match.group(1)
    assert len(key) >= 32
    assert statuses(s.url, [None, "", "wrong", key]) == [401, 401, 401, 401, 401, 401, 200, 200]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path", ["/v1/health/live", "/v1/health/ready", "/v1/health", "/openapi.json", "/docs/"]
)
async def test_open_paths_need_no_key(client: httpx.AsyncClient, path: str) -> None:
    client.headers.pop("x-api-key")
    r = await client.get(path)
    assert r.status_code == 200, r.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path", ["/v1/skills", "/v1/skills/list", "/v1/skills/text.summarize", "/v1/skills/text.summarize/describe"]
)
async def test_skill_catalog_needs_a_key(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200
    client.headers.pop("x-api-key")
    r = await client.get(path)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.get(path, headers={"x-api-key": "nope"})
    assert r.status_code == 401
