"""Secrets stay secret: inputs a skill's schema marks ``writeOnly: true`` or
``format: password`` reach the steps but are never stored or returned.

The finding (issue 10): "Inputs a skill's schema marks `writeOnly: true` (or
`format: password`) are never stored or returned — redacted in the run record, in
`GET /v1/runs/{id}` and in events". Before, the run record kept every input as
given (in SQLite), `GET /v1/runs/{id}` returned it, and a step that echoed the
secret (its output, an error message, a nested skill's events) put it into the log.
"""

from __future__ import annotations

import http.server
import json
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote, quote_plus

import httpx
import pytest

from conftest import API_KEY, Server, asgi_client
from skillrun.cli import main
from skillrun.engine.secret_inputs import PLACEHOLDER, redact, secret_at
from skillrun.runs.redaction import RunInputs, Scrubber
from sse_util import check_order, parse_sse

HEADERS = {"x-api-key": API_KEY}

WRITE_ONLY_SKILL = """\
id: secret.token
version: "1.0.0"
description: Calls an API with a token it must not keep.
inputs:
  type: object
  additionalProperties: false
  required: [token, url]
  properties:
    token: { type: string, writeOnly: true, minLength: 8 }
    url: { type: string }
    account: { type: object, properties: { pin: { type: integer, writeOnly: true }, name: { type: string } } }
outputs:
  echoed: { value: "${steps.echo.token}", schema: { type: string } }
  answer: { value: "${steps.call.json}", schema: { type: object } }
steps:
  - id: call
    uses: http.request
    input:
      url: "${inputs.url}"
      headers: { Authorization: "Bearer ${inputs.token}" }
      query: { key: "${inputs.token}" }
  - id: echo
    uses: util.echo
    input: { token: "${inputs.token}", line: "token=${inputs.token};", account: "${inputs.account}" }
  - id: complain
    uses: util.fail
    input: { message: "the API refused ${inputs.token}" }
    on_error: continue
  - id: each
    uses: util.echo
    foreach: "${[inputs.token, 'public']}"
    input: { value: "${item}" }
"""

PASSWORD_SKILL = """\
id: secret.login
version: "1.0.0"
description: Logs in through a nested skill.
inputs:
  type: object
  required: [password, url]
  properties:
    password: { type: string, format: password }
    url: { type: string }
outputs:
  login: { value: "${steps.login}", schema: { type: object } }
steps:
  - id: login
    uses: skill:secret.login_inner
    input: { secret: "${inputs.password}", url: "${inputs.url}" }
"""

NESTED_SKILL = """\
id: secret.login_inner
version: "1.0.0"
description: The nested skill that gets the password as a plain input.
inputs:
  type: object
  required: [secret, url]
  properties:
    secret: { type: string }
    url: { type: string }
outputs:
  said: { value: "${steps.say.said}", schema: { type: string } }
steps:
  - id: send
    uses: http.request
    input: { url: "${inputs.url}", headers: { X-Password: "${inputs.secret}" } }
  - id: say
    uses: util.echo
    input: { said: "logged in with ${inputs.secret}" }
"""


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers with what it received, as a careless API would."""

    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        got = {"path": self.path, "authorization": self.headers.get("Authorization", ""),
               "password": self.headers.get("X-Password", "")}
        self.seen.append(got)
        body = json.dumps({"you_sent": got}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api", seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def secret_server(server_factory: Callable[..., Server], tmp_path: Path) -> Server:
    skills = tmp_path / "skills"
    skills.mkdir()
    (skills / "secret.token.yaml").write_text(WRITE_ONLY_SKILL)
    (skills / "secret.login.yaml").write_text(PASSWORD_SKILL)
    (skills / "secret.login_inner.yaml").write_text(NESTED_SKILL)
    return server_factory(env={"SKILLRUN_HTTP_ALLOW": "127.0.0.1"}, args=["--skills", str(skills)])


def _spellings(secret: str) -> list[str]:
    """How the secret could appear in stored or returned text."""
    return list({secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]})


def _assert_absent(secret: str, text: str, where: str) -> None:
    for spelling in _spellings(secret):
        assert spelling not in text, f"the secret ({spelling!r}) is in {where}"


def _run_views(server: Server, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """The run (once ended), its events and the runs list, as a client reads them."""
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as client:
        events_text = client.get(f"/v1/runs/{run_id}/events").text  # follows until done
        run = client.get(f"/v1/runs/{run_id}")
        listed = client.get("/v1/runs")
    assert run.status_code == 200 and listed.status_code == 200
    frames = parse_sse(events_text)[0]
    return run.json(), [f.json for f in frames], run.text + listed.text + events_text


def _token() -> str:
    # Characters that URLs and JSON spell differently, so every spelling is checked.
    return "tok+" + secrets.token_hex(12) + "/="


def test_write_only_input_reaches_the_step_but_never_the_store_or_any_answer(
    secret_server: Server, api: tuple[str, list[dict[str, str]]], tmp_path: Path
) -> None:
    """"Inputs a skill's schema marks `writeOnly: true` (or `format: password`) are never
    stored or returned — redacted in the run record, in `GET /v1/runs/{id}` and in
    events": through /execute, /execute/stream and /execute/async, a step echoing it
    into its output, an error message and foreach items; the SQLite files are grepped."""
    url, seen = api
    tokens = {channel: _token() for channel in ("execute", "stream", "async")}
    pin = 902173
    run_ids: dict[str, str] = {}
    answers = ""
    base = secret_server.url + "/v1/skills/secret.token"
    with httpx.Client(headers=HEADERS, timeout=30) as client:
        for channel, token in tokens.items():
            body = {"inputs": {"token": token, "url": url, "account": {"pin": pin, "name": "ada"}}}
            path = base + ("/execute" if channel == "execute" else f"/execute/{channel}")
            r = client.post(path, json=body)
            assert r.status_code in (200, 202), r.text
            answers += r.text
            run_ids[channel] = r.headers["x-run-id"]
            if channel == "execute":
                result = r.json()
                assert result["status"] == "completed"
                # The secret echoed into the outputs is not returned, here or anywhere.
                assert result["outputs"]["echoed"] == PLACEHOLDER
            if channel == "stream":
                check_order(f.json for f in parse_sse(r.text)[0])

    for channel, token in tokens.items():
        run, events, text = _run_views(secret_server, run_ids[channel])
        assert run["status"] == "completed", run
        assert run["inputs"] == {"token": PLACEHOLDER, "url": url, "account": {"pin": PLACEHOLDER, "name": "ada"}}
        check_order(events)
        echo = next(e for e in events if e["type"] == "step_completed" and e["step_id"] == "echo")
        assert echo["data"]["produced_output"]["token"] == PLACEHOLDER
        assert echo["data"]["produced_output"]["line"] == f"token={PLACEHOLDER};"
        assert echo["data"]["produced_output"]["account"] == {"pin": PLACEHOLDER, "name": "ada"}
        failed = next(e for e in events if e["type"] == "step_failed")
        assert failed["data"]["error"]["message"] == f"the API refused {PLACEHOLDER}"
        item = next(e for e in events if e["step_id"] == "each" and e["type"] == "step_completed")
        assert item["data"]["produced_output"] == {"value": PLACEHOLDER}
        assert events[-1]["outputs"]["echoed"] == PLACEHOLDER
        _assert_absent(token, text + answers, f"the {channel} run's answers")
        assert str(pin) not in text + answers

    # The step got the real token every time (header and query).
    assert len(seen) == len(tokens)
    for token in tokens.values():
        assert any(s["authorization"] == f"Bearer {token}" and quote_plus(token) in s["path"] for s in seen)

    # Nothing on disk: the database, its WAL, the server's log.
    secret_server.terminate(signal.SIGKILL)  # no checkpoint: the WAL is read as it is
    secret_server.proc.wait(10)
    stored = b"".join(p.read_bytes() for p in (tmp_path / ".skillrun").iterdir())
    assert stored, "no database written"
    assert b"secret.token" in stored  # the runs are there ...
    for token in tokens.values():
        for spelling in _spellings(token):
            assert spelling.encode() not in stored  # ... their secrets are not
        assert str(pin).encode() not in stored
        _assert_absent(token, secret_server.log(), "the server's log")


def test_password_passed_to_a_nested_skill_stays_redacted_in_forwarded_events(
    secret_server: Server, api: tuple[str, list[dict[str, str]]], tmp_path: Path
) -> None:
    """A `format: password` input passed on to a nested skill (whose own input is not
    marked) is still scrubbed from the nested skill's forwarded events."""
    url, seen = api
    password = "pw-" + secrets.token_hex(10)
    r = httpx.post(
        secret_server.url + "/v1/skills/secret.login/execute/stream",
        json={"inputs": {"password": password, "url": url}}, headers=HEADERS, timeout=30,
    )
    events = [f.json for f in parse_sse(r.text)[0]]
    check_order(events)
    assert seen[0]["password"] == password  # the nested step got it
    said = next(e for e in events if e["step_id"] == "login/say" and e["type"] == "step_completed")
    assert said["data"]["produced_output"] == {"said": f"logged in with {PLACEHOLDER}"}
    assert said["data"]["parent_step_id"] == "login"
    sent = next(e for e in events if e["step_id"] == "login/send" and e["type"] == "step_completed")
    assert sent["data"]["produced_output"]["json"]["you_sent"]["password"] == PLACEHOLDER
    run, replayed, text = _run_views(secret_server, r.headers["x-run-id"])
    assert run["inputs"]["password"] == PLACEHOLDER and replayed == events
    _assert_absent(password, text + r.text, "the nested run's answers")
    secret_server.terminate(signal.SIGKILL)
    secret_server.proc.wait(10)
    stored = b"".join(p.read_bytes() for p in (tmp_path / ".skillrun").iterdir())
    assert password.encode() not in stored


def test_idempotency_keys_work_for_secret_inputs_without_storing_them(
    secret_server: Server, api: tuple[str, list[dict[str, str]]]
) -> None:
    """The key's request hash covers the real body: a retry with the same secret is
    the same run, another secret under the same key is a different request (409)."""
    url, _ = api
    token = _token()
    with httpx.Client(base_url=secret_server.url, headers={**HEADERS, "Idempotency-Key": "k-1"}, timeout=30) as c:
        body = {"inputs": {"token": token, "url": url, "account": {}}}
        first = c.post("/v1/skills/secret.token/execute", json=body)
        again = c.post("/v1/skills/secret.token/execute", json=body)
        other = c.post("/v1/skills/secret.token/execute", json={"inputs": {**body["inputs"], "token": _token()}})
    assert first.status_code == again.status_code == 200 and first.json()["status"] == "completed"
    assert again.headers["x-run-id"] == first.headers["x-run-id"] and again.json() == first.json()
    assert other.status_code == 409 and other.json()["errors"][0]["field"] == "Idempotency-Key"


def test_scrubbing_keeps_the_contract_vocabulary_intact() -> None:
    """A secret that is part of an enum value or id ("comp" in "completed") must not
    break the event: only free text and step data are scrubbed."""
    scrub = Scrubber(["comp"])
    done = {
        "type": "done", "status": "completed", "skill_id": "x.comp", "message": "Skill 'x.comp' completed.",
        "outputs": {"comp": "a comp b"}, "steps": [{"id": "comp", "status": "completed",
                                                  "error": {"kind": "comp", "message": "comp"}}],
    }
    out = scrub.payload(done)
    assert out["status"] == "completed" and out["skill_id"] == "x.comp" and out["steps"][0]["id"] == "comp"
    assert out["message"] == f"Skill 'x.{PLACEHOLDER}' {PLACEHOLDER}leted."
    assert out["outputs"] == {PLACEHOLDER: f"a {PLACEHOLDER} b"}
    assert out["steps"][0]["error"] == {"kind": PLACEHOLDER, "message": PLACEHOLDER}


def test_redact_replaces_marked_values_at_any_depth_whatever_their_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "format": "password"},
            "b": {"type": "array", "items": {"type": "object", "properties": {"k": {"writeOnly": True}}}},
            "c": {"type": "object", "writeOnly": True},
            "d": {"type": "string"},
        },
    }
    found: list[Any] = []
    out = redact(schema, {"a": "p1", "b": [{"k": "p2"}, {"k": 3, "j": "ok"}], "c": {"x": ["p3"]}, "d": "ok"}, found)
    assert out == {
        "a": PLACEHOLDER, "b": [{"k": PLACEHOLDER}, {"k": PLACEHOLDER, "j": "ok"}], "c": PLACEHOLDER, "d": "ok",
    }
    assert sorted(map(str, found)) == ["3", "p1", "p2", "p3"]


def test_a_secret_number_is_scrubbed_from_step_data_as_a_value_and_as_text() -> None:
    scrub = Scrubber([902173])
    out = scrub.payload({"message": "pin 902173", "data": {"produced_output": {"pin": 902173, "n": 7, "s": "902173"}}})
    assert out == {"message": f"pin {PLACEHOLDER}",
                   "data": {"produced_output": {"pin": PLACEHOLDER, "n": 7, "s": PLACEHOLDER}}}


@pytest.mark.anyio
async def test_a_422_for_a_secret_input_names_the_field_without_echoing_the_value(
    app_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """jsonschema's messages quote the failing value ("'hunter2' is too short"): not for a secret."""
    (tmp_path / "secret.token.yaml").write_text(WRITE_ONLY_SKILL)
    async with asgi_client(app_factory(skill_dirs=[tmp_path])) as client:
        r = await client.post("/v1/skills/secret.token/execute", json={"inputs": {"token": "hunter2", "url": "x"}})
        nested = await client.post(
            "/v1/skills/secret.token/execute",
            json={"inputs": {"token": "long-enough-9", "url": "x", "account": {"pin": "hunter3"}}},
        )
        spec = (await client.get("/openapi.json")).json()
    # The mark is part of the served contract (valid OAS 3.0), so clients see it too.
    body = spec["paths"]["/v1/skills/secret.token/execute"]["post"]["requestBody"]["content"]["application/json"]
    assert '"writeOnly": true' in json.dumps(body)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inputs.token"
    assert "hunter2" not in r.text and "minLength" in r.text
    assert nested.status_code == 422 and nested.json()["errors"][0]["field"] == "inputs.account.pin"
    assert "hunter3" not in nested.text and "long-enough-9" not in nested.text


def test_a_secret_input_with_a_default_is_a_load_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default would be served with the skill's schema and reach the steps unredacted."""
    path = tmp_path / "s.yaml"
    path.write_text('id: t\nversion: "1"\ninputs:\n  type: object\n  properties:\n'
                    '    token: {type: string, writeOnly: true, default: abc}\n'
                    '    login: {allOf: [{type: object}, {properties: {pw: {format: password, default: x}}}]}\n'
                    'steps:\n  - {id: a, uses: util.echo}\n')
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:6: inputs.properties.token.default: a secret input" in err
    assert "inputs.properties.login.allOf.1.properties.pw.default: a secret input" in err


def test_secrets_are_found_through_allof_anyof_and_array_items() -> None:
    schema = {"type": "object", "properties": {
        "a": {"allOf": [{"type": "string"}, {"writeOnly": True}]},
        "b": {"anyOf": [{"type": "object", "properties": {"k": {"format": "password"}}}, {"type": "string"}]},
        "c": {"type": "array", "items": {"type": "string", "writeOnly": True}},
    }}
    found: list[Any] = []
    out = redact(schema, {"a": "s1", "b": {"k": "s2", "j": "ok"}, "c": ["s3", "s4"]}, found)
    assert out == {"a": PLACEHOLDER, "b": {"k": PLACEHOLDER, "j": "ok"}, "c": [PLACEHOLDER, PLACEHOLDER]}
    assert sorted(found) == ["s1", "s2", "s3", "s4"]
    assert secret_at(schema, ["b", "k"]) and secret_at(schema, ["c", 1]) and not secret_at(schema, ["b", "j"])


def test_a_skill_knows_once_whether_its_inputs_hold_a_secret() -> None:
    """``Skill.secret_inputs``, asked at every run's start, is the schema walk's answer."""
    from skillrun.engine.model import Skill

    def skill(schema: dict[str, Any]) -> Skill:
        return Skill(id="s", version="1", description="", inputs_schema=schema, outputs=(), steps=())

    nested = {"type": "object", "properties": {"a": {"type": "array", "items": {"format": "password"}}}}
    assert skill(nested).secret_inputs is True
    assert skill({"type": "object", "properties": {"a": {"type": "string"}}}).secret_inputs is False
    assert RunInputs(skill(nested), {"a": ["pw-123456"]}).stored == {"a": [PLACEHOLDER]}


def test_scrubbing_stays_linear_in_the_text_and_the_secret() -> None:
    """Both are the key holder's to choose: a long secret over long text must not
    backtrack. A regex alternation of the secrets took 31 ms for a 2.5 KB secret over
    25 KB of text and 2.1 s for 8x both (66x: quadratic); ``find`` takes 7x."""

    def cost(k: int) -> float:
        secret = "a" * k + "b"
        scrub = Scrubber([secret, "c" + secret])
        text = "a" * (10 * k) + secret
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            assert scrub.text(text) == "a" * (10 * k) + PLACEHOLDER
            best = min(best, time.perf_counter() - start)
        return best

    small, large = cost(2500), cost(20_000)
    assert large < 24 * small, (small, large)  # 8x secret and text: linear is ~8x, quadratic 64x


def test_overlapping_and_adjacent_secrets_become_one_placeholder() -> None:
    scrub = Scrubber(["abc", "cde"])
    assert scrub.text("xabcdey abc") == f"x{PLACEHOLDER}y {PLACEHOLDER}"
    assert scrub.text("abcabc") == PLACEHOLDER
    assert scrub.text("no secret") == "no secret"


def test_scrubbing_a_deeply_nested_output_does_not_overflow_the_stack() -> None:
    """A step's output may nest as deep as a JSON parser allows (an http.request answer)."""
    deep: Any = "tok-secret"
    for _ in range(50_000):
        deep = {"k": [deep]}
    out = Scrubber(["tok-secret"]).payload({"data": {"produced_output": deep}})["data"]["produced_output"]
    for _ in range(50_000):
        out = out["k"][0]
    assert out == PLACEHOLDER
    found: list[Any] = []
    schema = {"type": "object", "properties": {"s": {"writeOnly": True}}}
    assert redact(schema, {"s": deep}, found) == {"s": PLACEHOLDER}
    assert found == ["tok-secret"]
