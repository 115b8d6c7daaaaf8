"""The access log names the key's owner (issue 14), never the key itself."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import API_KEY, OTHER_KEY, Server, start_server
from skillrun.keys import KeyRing, hash_key

WRONG_KEY = "wrong-key-5555555555555555"


def access_lines(server: Server, last_route: str, timeout_s: float = 10) -> list[dict[str, Any]]:
    """The server's JSON access lines, once the line of the last request (``last_route``) is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [json.loads(ln) for ln in server.log().splitlines() if ln.startswith("{")]
        access = [ln for ln in lines if ln["logger"] == "skillrun.access"]
        if any(ln["route"] == last_route for ln in access) or time.monotonic() > deadline:
            return access
        time.sleep(0.05)


def test_access_log_carries_the_keys_owner_never_the_key(tmp_path: Path) -> None:
    """Requests with API_KEY, with OTHER_KEY, with a wrong key (401) and with no key at all:
    each accepted request's access line names its own key's owner (``key_`` and the first 16
    hex digits of the key's SHA-256, as the run record's ``owner``); the 401s name none; no
    line, in JSON or text, holds any key."""
    server = start_server(tmp_path, args=["--log-format", "json", "--db", ":memory:"])
    try:
        url = server.url + "/v1/skills/text.summarize/execute"
        body = {"inputs": {"text": "One thing. Another thing."}}
        mine = httpx.post(url, headers={"x-api-key": API_KEY}, json=body)
        theirs = httpx.post(url, headers={"x-api-key": OTHER_KEY}, json=body)
        assert mine.status_code == 200 and theirs.status_code == 200
        assert httpx.post(url, headers={"x-api-key": WRONG_KEY}, json=body).status_code == 401
        assert httpx.get(server.url + "/v1/skills").status_code == 401
        access = access_lines(server, "/v1/skills")
    finally:
        server.stop()

    by_run = {ln.get("run_id"): ln for ln in access}
    ring = KeyRing([hash_key(API_KEY), hash_key(OTHER_KEY)])
    assert by_run[mine.json()["run_id"]]["owner"] == ring.identify(API_KEY)
    assert by_run[theirs.json()["run_id"]]["owner"] == ring.identify(OTHER_KEY)
    assert ring.identify(API_KEY) != ring.identify(OTHER_KEY)
    refused = [ln for ln in access if ln["status"] == 401]
    assert len(refused) == 2 and all("owner" not in ln for ln in refused)
    text = server.log()
    for key in (API_KEY, OTHER_KEY, WRONG_KEY):
        assert key not in text
