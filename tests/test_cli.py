"""``skillrun validate | keys | serve --skills``: exit codes and messages a user acts on."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx
import pytest
from conftest import API_KEY, Server, free_port
from skillrun.cli import main
from skillrun.keys import hash_key
from skillrun.settings import BUNDLED_SKILLS

GOOD = """\
id: my.count
version: "1.2.0"
description: Count the sentences of a text.
inputs:
  type: object
  additionalProperties: false
  required: [text]
  properties:
    text: { type: string, minLength: 1 }
outputs:
  count:
    value: ${steps.split.count}
    schema: { type: integer }
steps:
  - id: split
    uses: text.split_sentences
    input: { text: "${inputs.text}" }
"""

BROKEN = {
    "yaml.yaml": ("id: x\nsteps: [\n  - id: a\n", r"yaml\.yaml:\d+: invalid YAML"),
    "capability.yaml": (
        GOOD.replace("my.count", "my.cap").replace("text.split_sentences", "no.such.capability"),
        r"capability\.yaml:\d+: unknown capability 'no\.such\.capability'",
    ),
    "no-id.yaml": (GOOD.replace("id: my.count\n", ""), r"no-id\.yaml:\d+: .*'id' is a required property"),
    "cel.yaml": (
        GOOD.replace("my.count", "my.cel").replace("  - id: split\n", "  - id: split\n    when: \"inputs.text ===\"\n"),
        r"cel\.yaml:\d+: invalid CEL expression",
    ),
    "ref.yaml": (
        GOOD.replace("my.count", "my.ref").replace("${steps.split.count}", "${steps.nope.count}"),
        r"ref\.yaml:\d+: .*nope",
    ),
}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def skillrun(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``skillrun ARGS`` in this process (fast); ``test_console_script`` runs the real one."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors and --help
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def test_console_script(tmp_path: Path) -> None:
    """The real entry point, once: one good and one bad file give 1 and both verdicts."""
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BROKEN["yaml.yaml"][0])
    out = subprocess.run(
        [sys.executable, "-m", "skillrun", "validate", str(good), str(bad)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1, out.stderr
    assert f"{good}: ok" in out.stdout and f"{bad}:" in out.stderr


def test_validate_ok_files_exit_0(tmp_path: Path, skillrun: Callable[..., Result]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    out = skillrun("validate", str(good))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{good}: ok (my.count 1.2.0, 1 steps)"
    assert out.stderr == ""


def test_validate_the_bundled_skills(skillrun: Callable[..., Result]) -> None:
    files = sorted(str(p) for p in BUNDLED_SKILLS.glob("*.yaml"))
    out = skillrun("validate", *files)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == len(files)
    for name in ("text.summarize", "demo.showcase", "demo.ticker"):
        assert f"({name} " in out.stdout


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_validate_a_broken_file_exits_1_with_file_line_and_reason(
    tmp_path: Path, name: str, skillrun: Callable[..., Result]
) -> None:
    text, pattern = BROKEN[name]
    path = tmp_path / name
    path.write_text(text)
    out = skillrun("validate", str(path))
    assert out.returncode == 1
    assert out.stdout == ""
    assert re.search(pattern, out.stderr), out.stderr
    assert out.stderr.startswith(str(path) + ":")


def test_validate_reports_every_file_and_fails_if_any_is_bad(tmp_path: Path, skillrun: Callable[..., Result]) -> None:
    good, bad, missing = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "missing.yaml"
    good.write_text(GOOD)
    bad.write_text(BROKEN["capability.yaml"][0])
    out = skillrun("validate", str(bad), str(good), str(missing))
    assert out.returncode == 1
    assert f"{good}: ok" in out.stdout  # a bad file does not hide the verdict on the next
    assert f"{bad}:" in out.stderr and f"{missing}:" in out.stderr


def test_validate_without_files_is_a_usage_error(skillrun: Callable[..., Result]) -> None:
    out = skillrun("validate")
    assert out.returncode == 2
    assert "usage: skillrun validate" in out.stderr


def test_keys_new_prints_a_key_and_its_hash(skillrun: Callable[..., Result]) -> None:
    out = skillrun("keys", "new")
    assert out.returncode == 0
    m = re.fullmatch(r"key:\s+(\S+)\nsha256:\s+([0-9a-f]{64})\n", out.stdout)
    assert m, out.stdout
    assert hash_key(m.group(1)) == m.group(2)
    again = skillrun("keys", "new")
    assert again.stdout != out.stdout


def test_help_lists_the_commands(skillrun: Callable[..., Result]) -> None:
    out = skillrun("--help")
    assert out.returncode == 0
    for command in ("serve", "validate", "keys"):
        assert command in out.stdout


def test_serve_skills_dir_adds_skills_and_skips_broken_files(
    tmp_path: Path, server_factory: Callable[..., Server]
) -> None:
    """A broken user skill is logged with its path and reason; the server starts anyway."""
    skills = tmp_path / "skills"
    skills.mkdir()
    (skills / "count.yaml").write_text(GOOD)
    (skills / "broken.yaml").write_text(BROKEN["capability.yaml"][0])
    s = server_factory(args=["--skills", str(skills)])
    log = s.log()
    assert str(skills / "broken.yaml") in log and "unknown capability" in log, log
    with httpx.Client(base_url=s.url, headers={"x-api-key": API_KEY}, timeout=10) as c:
        ids = {x["id"] for x in c.get("/v1/skills").json()["skills"]}
        assert "my.count" in ids and "text.summarize" in ids and "my.cap" not in ids
        r = c.post("/v1/skills/my.count/execute", json={"inputs": {"text": "One. Two. Three."}})
        assert r.status_code == 200, r.text
        assert r.json()["outputs"] == {"count": 3}
        # The user skill's own input schema is enforced from the served contract.
        r = c.post("/v1/skills/my.count/execute/stream", json={"inputs": {"text": ""}})
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["inputs.text"]
        assert c.post("/v1/skills/my.cap/execute", json={"inputs": {}}).status_code == 404


def test_serve_hands_work_to_threads_promptly_behind_a_busy_loop(
    monkeypatch: pytest.MonkeyPatch, skillrun: Callable[..., Result]
) -> None:
    """``skillrun serve`` serves with a 1 ms switch interval (``_prompt_thread_handoffs``):
    at Python's 5 ms a checkpoint's pause waited 16-126 ms for the GIL behind a busy
    loop (bench/checkpoint.py), and every live stream waited with it."""
    import gc
    import logging

    from skillrun import cli

    seen: dict[str, float] = {}

    def run(self: cli.DrainingServer, sockets: object = None) -> None:
        seen["interval"] = sys.getswitchinterval()

    monkeypatch.setattr(cli.DrainingServer, "run", run)
    monkeypatch.setenv("SKILLRUN_API_KEYS", API_KEY)
    monkeypatch.setenv("SKILLRUN_DB", ":memory:")
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # serve routes logging to its stderr
    try:
        out = skillrun("serve", "--port", str(free_port()))
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        root.handlers[:] = handlers
        root.setLevel(level)
    assert out.returncode == 0, out.stderr
    assert seen == {"interval": 0.001}


@pytest.mark.parametrize(
    "env,message",
    [
        ({"SKILLRUN_API_KEYS_FILE": "{tmp}/keys.sha256"}, r"keys\.sha256:2: not a SHA-256 hex digest"),
        ({"SKILLRUN_API_KEYS_FILE": "{tmp}/missing.sha256"}, r"No such file or directory: .*missing\.sha256"),
        ({"SKILLRUN_RATE_LIMIT": "lots"}, r"rate limit string 'lots'"),
    ],
    ids=["plain-key-in-hash-file", "missing-keys-file", "bad-rate-limit"],
)
def test_serve_with_bad_configuration_exits_2_with_a_message(
    tmp_path: Path, env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch,
    skillrun: Callable[..., Result],
) -> None:
    """Regression: these ended in a traceback; a user needs the one line that says what to fix.
    (The app is built before uvicorn starts, so this runs in-process.)"""
    (tmp_path / "keys.sha256").write_text(hash_key("fine") + "\nmy-plain-key\n")
    monkeypatch.setenv("SKILLRUN_API_KEYS", API_KEY)
    monkeypatch.setenv("SKILLRUN_DB", ":memory:")
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    out = skillrun("serve", "--port", str(free_port()))
    assert out.returncode == 2, out.stderr
    assert re.search(r"^skillrun serve: .*" + message, out.stderr, re.M), out.stderr
    assert "Traceback" not in out.stderr
