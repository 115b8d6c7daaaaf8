"""The served contract holds: schemathesis fuzzes the app from its own ``/openapi.json``.

Every operation the served spec holds at collection time is tested (the per-skill
ones included), with every built-in check, every SSE event validated against the
``SkillEvent`` union (``contract_hooks.before_load_schema``) and the stream rules
checked (``contract_hooks.sse_stream_rules``). Configuration: ``schemathesis.toml``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import pytest
import requests
import schemathesis
from conftest import API_KEY, ROOT, Server, make_settings
from hypothesis import HealthCheck, settings
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest
from schemathesis.config import SchemathesisConfig
from schemathesis.config._auth import AuthConfig
from skillrun.engine import SkillCatalog
from skillrun.http.app import create_app
from skillrun.http.spec import build_spec, load_base_spec
from spec_tools import event_validator
from sse_util import check_order, parse_sse
from starlette.testclient import TestClient


@contextlib.contextmanager
def _cwd(path: os.PathLike[str] | str) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _load_config() -> SchemathesisConfig:
    # The toml names its hooks file relative to the repository root.
    with _cwd(ROOT):
        config = SchemathesisConfig.from_path(ROOT / "schemathesis.toml")
    # As the spec's security scheme (not a plain header), so the auth checks can drop it.
    config.projects.override.auth = AuthConfig(openapi={"ApiKeyAuth": {"api_key": API_KEY}})
    return config


# Every origin allowed: a preflight's outcome then depends on the request alone, as
# the spec can describe it. A limit no run reaches: 429 is tested elsewhere.
APP = create_app(
    make_settings(validate_responses=True, rate_limit="1000000/minute", cors_origins=["*"])
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=_load_config())


@pytest.fixture
def answers() -> Iterator[list[int]]:
    """Fails an operation whose every answer was 401: such a run proved nothing.

    The toml's ``fail-on = ["missing_auth"]`` does this in ``schemathesis run``;
    under pytest schemathesis does not collect warnings, so this fixture does.
    """
    statuses: list[int] = []
    yield statuses
    assert not statuses or set(statuses) != {401}, "every answer was 401: is the API key configured?"


@schema.parametrize()
# `answers` is meant to span every example of one operation.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_conforms_to_the_served_contract(case: Any, answers: list[int]) -> None:
    response = case.call()
    if case.method.upper() == case.operation.method.upper():  # not the 405 probes
        answers.append(response.status_code)
    case.validate_response(response)


# --- Every operation over a real socket, each request and answer checked by openapi-core ---

Call = Callable[..., requests.Response]


@dataclass
class WireResponse:
    """openapi-core's response protocol, for one answer or one SSE frame of it."""

    status_code: int
    headers: Mapping[str, str]
    content_type: str
    data: bytes


def _sse_frame_loads(value: bytes, **_params: str) -> dict[str, Any]:
    """One SSE frame as a client's parser sees it: the spec's ``SseFrame``."""
    frames, _ = parse_sse(value.decode("utf-8"))
    assert len(frames) == 1, f"expected one frame, got {len(frames)}"
    return {"event": frames[0].event, "data": frames[0].data, "id": frames[0].id}


def _served_openapi(url: str) -> tuple[dict[str, Any], OpenAPI]:
    spec = requests.get(url + "/openapi.json", timeout=10).json()
    config = Config(
        extra_media_type_deserializers={
            "application/problem+json": lambda value, **_: json.loads(value),
            "text/event-stream": _sse_frame_loads,
        }
    )
    return spec, OpenAPI.from_dict(spec, config=config)


class ContractClient:
    """Sends real requests; checks each request and answer against the served spec."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.spec, self.openapi = _served_openapi(url)
        self.check_event = event_validator(self.spec)
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(self, method: str, path: str, *, valid: bool = True, **kwargs: Any) -> requests.Response:
        response = requests.request(method, self.url + path, timeout=30, **kwargs)
        request = RequestsOpenAPIRequest(response.request)
        request_errors = list(self.openapi.iter_request_errors(request))
        if valid:
            assert not request_errors, f"{method} {path}: the spec rejects a request the test meant as valid: {request_errors}"
        else:
            assert request_errors, f"{method} {path}: the spec accepts a request the server refused ({response.status_code})"
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream") and response.status_code == 200:
            self._check_stream(request, response)
        else:
            wire = WireResponse(response.status_code, response.headers, content_type, response.content)
            self.openapi.validate_response(request, wire)
        self.seen.add((method, self._operation_path(request), response.status_code))
        return response

    def _check_stream(self, request: Any, response: requests.Response) -> None:
        # Each frame through openapi-core (status, headers, SseFrame); each payload
        # through the SkillEvent union (openapi-core does not read x-contentSchema).
        text = response.content.decode("utf-8")
        frames, _ = parse_sse(text)
        content_type = response.headers["content-type"]
        for frame in frames:
            one = f"id: {frame.id}\nevent: {frame.event}\ndata: {frame.data}\n\n".encode()
            self.openapi.validate_response(request, WireResponse(200, response.headers, content_type, one))
            self.check_event(frame.json)
        check_order([frame.json for frame in frames])

    def _operation_path(self, request: Any) -> str:
        result = self.openapi.unmarshal_request(request)  # finds the path even when invalid
        path = getattr(getattr(result, "path", None), "name", None)
        return path or request.path


@pytest.fixture(scope="module")
def contract(server: Server) -> ContractClient:
    return ContractClient(server.url)


KEY = {"x-api-key": API_KEY}
BUNDLED_INPUTS = {
    "text.summarize": {"text": "Cats purr. Dogs bark loudly. Cats sleep a lot.", "max_sentences": 1},
    "demo.showcase": {"text": "Mail ann@example.org today. It works.", "detailed": True},
    "demo.ticker": {"steps": 3, "delay_ms": 1},
    "demo.approval": {"text": "Cats purr. Dogs bark.", "timeout": "10ms"},  # nobody answers: it times out
}


@pytest.mark.parametrize("skill_id", sorted(BUNDLED_INPUTS))
@pytest.mark.parametrize("suffix", ["/execute", "/execute/stream"])
def test_execute_requests_and_answers_match_the_served_spec(contract: ContractClient, skill_id: str, suffix: str) -> None:
    r = contract("POST", f"/v1/skills/{skill_id}{suffix}", headers={**KEY, "x-trace-id": "t-1"},
                 json={"inputs": BUNDLED_INPUTS[skill_id]})
    assert r.status_code == 200, r.text
    assert r.headers["x-trace-id"] == "t-1"


@pytest.mark.parametrize("path", ["/v1/skills", "/v1/skills/list", "/v1/skills/demo.ticker",
                                  "/v1/skills/demo.ticker/describe"])
def test_skill_listing_and_description_match_the_served_spec(contract: ContractClient, path: str) -> None:
    assert contract("GET", path, headers=KEY).status_code == 200


@pytest.mark.parametrize("path", ["/v1/health/live", "/v1/health/ready", "/v1/health"])
def test_health_probes_match_the_served_spec_without_a_key(contract: ContractClient, path: str) -> None:
    assert contract("GET", path).status_code == 200


@pytest.mark.parametrize("suffix", ["/execute", "/execute/stream"])
def test_client_errors_are_documented_problems(contract: ContractClient, suffix: str) -> None:
    base = f"/v1/skills/text.summarize{suffix}"
    good = {"inputs": {"text": "Hello."}}
    cases: list[tuple[int, str, str, dict[str, Any]]] = [
        (400, "POST", base, {"headers": {**KEY, "content-type": "application/json"}, "data": b"{nope"}),
        (400, "POST", base, {"headers": {**KEY, "content-type": "application/json"}, "data": b'{"inputs": "\xff"}'}),
        (401, "POST", base, {"json": good}),
        (401, "POST", base, {"headers": {"x-api-key": "wrong-key"}, "json": good}),  # spec-valid
        (404, "POST", f"/v1/skills/no.such.skill{suffix}", {"headers": KEY, "json": good}),
        (415, "POST", base, {"headers": {**KEY, "content-type": "text/plain"}, "data": b"Hello."}),
        (422, "POST", base, {"headers": KEY, "json": {"inputs": {}}}),
        (422, "POST", base, {"headers": KEY, "json": {"inputs": {"text": "Hi.", "max_sentences": 21}}}),
        (422, "POST", base, {"headers": KEY, "json": {"inputs": {"text": "Hi."}, "options": {"nope": 1}}}),
    ]
    for status, method, path, kwargs in cases:
        if status == 404:
            # Not in the served spec (it names only the loaded skills; spec.served_spec),
            # so there is nothing to check it against but the problem itself.
            assert not [p for p in contract.spec["paths"] if "{skill_id}/execute" in p]
            r = requests.request(method, contract.url + path, timeout=30, **kwargs)
            assert r.status_code == 404 and r.json()["status"] == 404, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            continue
        # A wrong key is valid by the spec; the rest break it.
        spec_valid = kwargs.get("headers", {}).get("x-api-key") == "wrong-key"
        r = contract(method, path, valid=spec_valid, **kwargs)
        assert r.status_code == status, (status, path, kwargs, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("path", ["/v1/skills/no.such.skill", "/v1/skills/no.such.skill/describe"])
def test_unknown_skill_descriptions_are_documented_404s(contract: ContractClient, path: str) -> None:
    assert contract("GET", path, headers=KEY).status_code == 404
    assert contract("GET", path, valid=False).status_code == 401


def test_body_over_the_limit_is_a_documented_413(server_factory: Callable[..., Server]) -> None:
    contract = ContractClient(server_factory(env={"SKILLRUN_MAX_BODY_BYTES": "2000"}).url)
    for suffix in ("/execute", "/execute/stream"):
        # Valid by the spec (maxLength is far above): only the size limit refuses it.
        r = contract("POST", f"/v1/skills/text.summarize{suffix}", headers=KEY, json={"inputs": {"text": "x" * 5000}})
        assert r.status_code == 413, r.text


def test_rate_limited_requests_are_documented_429s(server_factory: Callable[..., Server]) -> None:
    contract = ContractClient(server_factory(env={"SKILLRUN_RATE_LIMIT": "2/minute"}).url)
    body = {"inputs": {"steps": 1}}
    statuses = [contract("POST", "/v1/skills/demo.ticker/execute", headers=KEY, json=body).status_code,
                contract("POST", "/v1/skills/demo.ticker/execute/stream", headers=KEY, json=body).status_code]
    assert statuses == [200, 200]
    for suffix in ("/execute", "/execute/stream"):
        r = contract("POST", f"/v1/skills/demo.ticker{suffix}", headers=KEY, json=body)
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1
    assert contract("GET", "/v1/skills", headers=KEY).status_code == 429


# --- The served spec routes as intended: per-skill paths first, per-skill bodies exact ---

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _path_regex(path: str) -> re.Pattern[str]:
    # connexion (Starlette) matches a path parameter as one segment.
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")


def shadowed_operations(spec: Mapping[str, Any]) -> list[str]:
    """Concrete operations that an earlier templated path with the same method would take.

    connexion 3.3 tries paths in the order of ``paths`` (not concrete-first as OAS
    says), so a templated path listed earlier answers the concrete one's requests.
    """
    paths = list(spec["paths"].items())
    problems = []
    for j, (concrete, item) in enumerate(paths):
        if "{" in concrete:
            continue
        for templated, earlier in paths[:j]:
            same = (HTTP_METHODS & set(item)) & set(earlier)
            if "{" in templated and same and _path_regex(templated).match(concrete):
                problems.append(f"{sorted(same)} {concrete} comes after {templated}, which takes its requests")
    return problems


def body_schema_mismatches(spec: Mapping[str, Any], skills: list[Any]) -> list[str]:
    """Per-skill execute operations whose body's ``inputs`` is not the skill's inputs schema,
    and templated execute operations a loaded skill has no concrete twin of."""
    paths = spec["paths"]
    # The served spec leaves the templated operations out (spec.served_spec): the base spec has them.
    templated = [p for p in load_base_spec()["paths"] if p.startswith("/v1/skills/{skill_id}/execute")]
    assert templated, "the spec has no templated execute operation"
    problems = []
    for skill in skills:
        for template in templated:
            concrete = template.replace("{skill_id}", skill.id)
            op = paths.get(concrete, {}).get("post")
            if op is None:
                problems.append(f"{concrete} is missing")
                continue
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            if schema.get("properties", {}).get("inputs") != skill.inputs_schema:
                problems.append(f"{concrete}: body inputs {schema.get('properties', {}).get('inputs')} "
                                f"!= the skill's inputs {skill.inputs_schema}")
    return problems


USER_SKILL = """\
id: user.shout
version: "0.1.0"
description: A user skill from --skills, so the check is not only about bundled ones.
inputs:
  type: object
  additionalProperties: false
  required: [text]
  properties:
    text: { type: string, minLength: 1, maxLength: 40 }
    times: { type: integer, minimum: 1, maximum: 3, default: 1 }
outputs:
  summary:
    value: ${steps.summarize.summary}
    schema: { type: string }
steps:
  - id: split
    uses: text.split_sentences
    input: { text: "${inputs.text}" }
  - id: summarize
    uses: text.extractive_summary
    input: { sentences: "${steps.split.sentences}", max_sentences: 1 }
"""


@pytest.fixture
def served(app_factory: Callable[..., Any], tmp_path: Any) -> tuple[dict[str, Any], list[Any]]:
    (tmp_path / "user.shout.yaml").write_text(USER_SKILL)
    app = app_factory(skill_dirs=[tmp_path])
    skills = list(app.services.catalog.all())
    assert "user.shout" in [s.id for s in skills], "the user skill did not load"
    with TestClient(app) as c:
        return c.get("/openapi.json").json(), skills


def test_per_skill_paths_come_before_the_templated_ones(served: tuple[dict[str, Any], list[Any]]) -> None:
    _served, skills = served
    # The spec connexion routes from (the served one leaves the templated execute paths out).
    spec = build_spec(SkillCatalog(skills))
    assert shadowed_operations(spec) == []
    # And the checker itself catches the trap: templated paths first.
    flipped = {**spec, "paths": dict(sorted(spec["paths"].items(), key=lambda kv: "{" not in kv[0]))}
    shadowed = shadowed_operations(flipped)
    assert any("/v1/skills/user.shout/execute " in p for p in shadowed), shadowed


def test_per_skill_operation_bodies_are_the_skill_inputs_schema(served: tuple[dict[str, Any], list[Any]]) -> None:
    spec, skills = served
    assert body_schema_mismatches(spec, skills) == []
    broken = copy.deepcopy(spec)
    body = broken["paths"]["/v1/skills/user.shout/execute/stream"]["post"]["requestBody"]
    body["content"]["application/json"]["schema"]["properties"]["inputs"]["properties"]["times"]["maximum"] = 4
    assert len(body_schema_mismatches(broken, skills)) == 1
