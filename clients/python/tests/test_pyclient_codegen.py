"""Issue 13 §3: ``skillrun-client codegen URL -o myskills.py`` writes typed models and
helpers for the skills a server serves — a user's own skills included — and the file is
mypy --strict clean, rejects wrong inputs at type-check time, and runs."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import anyio
import pytest

from skillrun_client import AsyncClient, Client, RunFailedError
from skillrun_client import _codegen
from skillrun_client._cli import main
from skillrun_client._codegen import CodegenError, Skill, render, skills_of, spec_url

from .conftest import API_KEY, ScriptServer, Server, answer, start_server, stop_server

CLIENT = Path(__file__).resolve().parent.parent

GREET = """\
id: acme.greet
version: "1.0.0"
description: Greets someone, a number of times.
inputs:
  type: object
  additionalProperties: false
  required: [name]
  properties:
    name: { type: string, minLength: 1 }
    times: { type: integer, minimum: 1, maximum: 5, default: 1 }
    shout: { type: boolean }
outputs:
  greeting:
    value: ${inputs.name}
    schema: { type: string }
  times:
    value: ${inputs.times}
    schema: { type: integer }
steps:
  - id: wait
    uses: util.sleep
    input: { ms: 0 }
"""

NOTHING = """\
id: acme.nothing
version: "1.0.0"
description: Takes nothing, gives nothing.
inputs: { type: object, additionalProperties: false, properties: {} }
outputs: {}
steps:
  - id: wait
    uses: util.sleep
    input: { ms: 0 }
"""

USAGE = """\
from skillrun_client import Client
from myskills import run_acme_greet, stream_acme_greet, run_acme_nothing


def use(client: Client) -> str | None:
    done = run_acme_greet(client, name="Ada", times=2)
    times: int | None = done.outputs.times
    run_acme_greet(client, name="Ada", times="2")  # type: ignore[arg-type]
    run_acme_greet(client, nme="Ada")  # type: ignore[call-arg]
    run_acme_greet(client)  # type: ignore[call-arg]
    run_acme_nothing(client)
    for event in stream_acme_greet(client, name="Bo"):
        print(event.type, times)
    return done.outputs.greeting
"""


@pytest.fixture(scope="module")
def user_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real server with a user skill directory (SKILLRUN_SKILLS) besides the bundled skills."""
    tmp = tmp_path_factory.mktemp("codegen")
    skills = tmp / "skills"
    skills.mkdir()
    (skills / "acme.greet.yaml").write_text(GREET)
    (skills / "acme.nothing.yaml").write_text(NOTHING)
    server = start_server(tmp, {"SKILLRUN_SKILLS": str(skills)})
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def generated(user_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated") / "myskills.py"
    # No --api-key: the served spec is public.
    assert main(["codegen", user_server.url, "-o", str(out)]) == 0
    return out


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("myskills", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["myskills"] = module  # as `import myskills` does: pydantic resolves its annotations there
    spec.loader.exec_module(module)
    return module


def test_the_generated_module_is_mypy_strict_clean_and_rejects_wrong_inputs(generated: Path) -> None:
    """mypy --strict (which warns about unused ignores) passes only if each wrong call in the
    usage file is an error: a string for an integer, a misspelt input, a missing one."""
    (generated.parent / "usage.py").write_text(USAGE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CLIENT), str(generated.parent)])}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "myskills.py", "usage.py"],
        cwd=generated.parent, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_generated_helpers_run_a_users_skill_with_typed_outputs(generated: Path, user_server: Server) -> None:
    myskills = load(generated)
    with Client(user_server.url, API_KEY) as client:
        done = myskills.run_acme_greet(client, name="Ada", times=2)
        assert isinstance(done.outputs, myskills.AcmeGreetOutputs)
        assert (done.outputs.greeting, done.outputs.times, done.result.status) == ("Ada", 2, "completed")
        with myskills.stream_acme_greet(client, name="Bo") as stream:
            types = [event.type for event in stream]
        assert types[0] == "skill_start" and types[-1] == "done"
        assert myskills.run_acme_nothing(client).result.status == "completed"
        with pytest.raises(RunFailedError):
            myskills.run_demo_showcase(client, text="Hello there. Bye.", fail=True)
        with pytest.raises(Exception, match="greater than or equal to 1"):
            myskills.run_acme_greet(client, name="Ada", times=0)  # the model checks before sending


def test_generated_async_helpers(generated: Path, user_server: Server) -> None:
    myskills = load(generated)

    async def go() -> tuple[str | None, list[str]]:
        async with AsyncClient(user_server.url, API_KEY) as client:
            done = await myskills.arun_acme_greet(client, name="Cy")
            async with myskills.astream_acme_greet(client, name="Di") as stream:
                types = [event.type async for event in stream]
            return done.outputs.greeting, types

    greeting, types = anyio.run(go)
    assert greeting == "Cy" and types[-1] == "done"


def test_codegen_writes_to_stdout_without_o(generated: Path, user_server: Server) -> None:
    out = io.StringIO()
    assert main(["--api-key", API_KEY, "codegen", user_server.url + "/openapi.json"], stdout=out) == 0
    assert out.getvalue() == generated.read_text()
    assert "def run_text_summarize(client: Client, *, text: str, max_sentences: int = 2" in out.getvalue()


@pytest.mark.anyio
async def test_codegen_from_a_server_without_skills_or_without_a_spec_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    async with ScriptServer([answer(200, {"openapi": "3.0.3", "paths": {}}), answer(404, {"title": "nope", "status": 404})]) as srv:
        assert await anyio.to_thread.run_sync(main, ["codegen", srv.url]) == 2
        assert "serves no skills" in capsys.readouterr().err
        assert await anyio.to_thread.run_sync(main, ["codegen", srv.url]) == 2
        assert "404" in capsys.readouterr().err


def test_codegen_without_the_generator_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_codegen.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CodegenError, match=r"\[codegen\] extra\): pip install -e '"):
        _codegen.models_source([Skill("a", {"type": "object"}, {"type": "object"})])


def test_a_generator_failure_is_a_codegen_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_codegen, "OPTIONS", ["--no-such-option"])
    with pytest.raises(CodegenError, match="datamodel-code-generator failed"):
        _codegen.models_source([Skill("a", {"type": "object"}, {"type": "object"})])


def test_names_and_urls() -> None:
    assert (Skill("text.summarize", {}, {}).name, Skill("text.summarize", {}, {}).snake) == ("TextSummarize", "text_summarize")
    assert Skill("9lives-cat", {}, {}).snake == "skill_9lives_cat"
    assert spec_url("http://h:1/") == "http://h:1/openapi.json" and spec_url("http://h/spec.yaml") == "http://h/spec.yaml"
    execute = {"post": {"requestBody": {"content": {"application/json": {"schema": {"properties": {"inputs": {"type": "object"}}}}}},
                        "responses": {"200": {"content": {"application/json": {"schema": {"type": "object"}}}}}}}  # fmt: skip
    skills = skills_of({"paths": {"/v1/skills/b/execute": execute, "/v1/skills/{skill_id}/execute": execute, "/v1/runs": {}}})
    assert skills == [Skill("b", {"type": "object"}, {"type": "object"})]
    assert "def run_b(client: Client, *, options" in render({"paths": {"/v1/skills/b/execute": execute}}, "x")
