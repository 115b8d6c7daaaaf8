"""One conformance run: fetch the served spec, fuzz it, then the live behaviours."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from . import behaviours as b
from .fuzz import fuzz
from .report import Result
from .schemas import event_validator
from .sse import RuleViolation

LONG_SKILL = "demo.ticker"
# Long enough to see spacing (~1.2 s), short enough to resume at all ~17 cut points quickly.
TICKER_INPUTS = {"steps": 6, "delay_ms": 200}
TICKER_CANCEL_INPUTS = {"steps": 200, "delay_ms": 100}
TICKER_BUDGET_MS = 4000  # generated demo.ticker runs: steps x delay_ms at most this
# A run that reports progress per item (a step_delta each): cut after the third of
# eight, while the run still goes on (~0.75 s left), then resume.
TICKER_DELTA_INPUTS = {"steps": 8, "delay_ms": 150, "progress": True}
DELTA_CUT_AFTER = 3


@dataclass
class Options:
    url: str
    key: str
    other_key: str | None = None
    skills: list[str] = field(default_factory=list)
    max_examples: int = 10
    fuzz: bool = True
    close_timeout_s: float = 5.0


WAIT_SKILL = "demo.approval"  # waits for a person (human.input): 7 days by default
WAIT_TIMEOUT = "20ms"  # generated demo.approval runs: how long they wait for their answer
_DURATION = re.compile(r"[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?")  # demo.approval's `timeout` pattern


def fold_ticker(case: Any) -> None:
    """Keeps the deliberately slow demo skills' generated runs short: demo.ticker's
    steps x delay_ms, demo.approval's wait for a person (only in-range values, so a
    case meant to be invalid stays invalid)."""
    inputs = case.body.get("inputs") if isinstance(case.body, dict) else None
    if f"/{WAIT_SKILL}/" in case.operation.path and isinstance(inputs, dict):
        sent = inputs.get("timeout", WAIT_TIMEOUT)
        if isinstance(sent, str) and _DURATION.fullmatch(sent):
            inputs["timeout"] = WAIT_TIMEOUT
        return
    if f"/{LONG_SKILL}/" not in case.operation.path or not isinstance(inputs, dict):
        return
    steps, delay = inputs.get("steps", 3), inputs.get("delay_ms", 0)
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (steps, delay))
    if ints and 1 <= steps <= 10000 and 0 <= delay <= 60000 and steps * delay > TICKER_BUDGET_MS:
        inputs["delay_ms"] = TICKER_BUDGET_MS // steps


def _served_skills(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Skill id -> its /execute/stream operation, from the concrete paths of the served spec."""
    out = {}
    for path, item in spec.get("paths", {}).items():
        if path.startswith("/v1/skills/") and path.endswith("/execute/stream") and "{" not in path:
            out[path[len("/v1/skills/"):-len("/execute/stream")]] = item.get("post", {})
    return out


def _inputs_schema(operation: dict[str, Any]) -> dict[str, Any]:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    inputs = schema.get("properties", {}).get("inputs", {})
    return inputs if isinstance(inputs, dict) else {}


def _input_properties(operation: dict[str, Any]) -> dict[str, Any]:
    properties = _inputs_schema(operation).get("properties", {})
    return properties if isinstance(properties, dict) else {}


def _example_inputs(operation: dict[str, Any]) -> dict[str, Any]:
    """Inputs from the operation's body schema: each property's default or example, the required ones first."""
    inputs = _inputs_schema(operation)
    out: dict[str, Any] = {}
    for name, prop in inputs.get("properties", {}).items():
        for key in ("example", "default"):
            if key in prop:
                out[name] = prop[key]
                break
        else:
            if name in inputs.get("required", []) and prop.get("type") == "string":
                out[name] = "Conformance checks run this. Each step is an event."
    return out


def _attempt(results: list[Result], rule: str, name: str, check: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        value = check()
    except RuleViolation as exc:
        results.append(Result(exc.rule, name, "failed", exc.message, time.monotonic() - started))
        return None
    except b.Skip as exc:
        results.append(Result(rule, name, "skipped", str(exc), time.monotonic() - started))
        return None
    except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
        results.append(Result(rule, name, "failed", f"{type(exc).__name__}: {exc}", time.monotonic() - started))
        return None
    results.append(Result(rule, name, "passed", seconds=time.monotonic() - started))
    return value


def run(options: Options, progress: Callable[[str], None] = lambda _: None) -> list[Result]:
    results: list[Result] = []
    with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
        progress("fetching the served spec")
        try:
            response = client.get(options.url + "/openapi.json", headers={"x-api-key": options.key})
            spec = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            return [Result("http.spec", "GET /openapi.json", "failed", f"{type(exc).__name__}: {exc}")]
        if not isinstance(spec, dict):
            return [Result("http.spec", "GET /openapi.json", "failed", f"{response.status_code}: {response.text[:300]}")]
        if options.fuzz:
            results += fuzz(options.url, options.key, spec, options.max_examples, fold_ticker, progress)
        validate = event_validator(spec)
        served = _served_skills(spec)
        targets = options.skills or ([LONG_SKILL] if LONG_SKILL in served else [])
        if not targets:
            results.append(Result("stream.incremental", "live behaviours", "skipped",
                                  f"{LONG_SKILL} is not loaded and no --skill was given"))
        for skill in targets:
            if skill not in served:
                results.append(Result("http.spec", f"{skill}: served", "failed", f"the served spec has no {skill}"))
                continue
            inputs = TICKER_INPUTS if skill == LONG_SKILL else _example_inputs(served[skill])
            target = b.Target(options.url, options.key, skill, inputs, validate, options.other_key,
                              close_timeout_s=options.close_timeout_s)
            results += _behaviours(client, target, progress)
        results += _delta_behaviour(client, options, served, validate, progress)
    return results


def _delta_behaviour(client: httpx.Client, options: Options, served: dict[str, dict[str, Any]],
                     validate: Callable[[Any], None], progress: Callable[[str], None]) -> list[Result]:
    """The step_delta rules on a live run of demo.ticker with ``progress``; skipped on a
    deployment without it (users check their own servers, with their own skills)."""
    name = f"{LONG_SKILL}: step_delta rules and resume in the middle"
    if LONG_SKILL not in served:
        return [Result("resume.deltas", name, "skipped", f"{LONG_SKILL} is not loaded")]
    if "progress" not in _input_properties(served[LONG_SKILL]):
        return [Result("resume.deltas", name, "skipped", f"this {LONG_SKILL} has no `progress` input")]
    target = b.Target(options.url, options.key, LONG_SKILL, dict(TICKER_DELTA_INPUTS), validate,
                      close_timeout_s=options.close_timeout_s)
    progress(name)
    results: list[Result] = []
    _attempt(results, "resume.deltas", name, lambda: b.check_deltas_live(client, target, DELTA_CUT_AFTER))
    return results


def _behaviours(client: httpx.Client, target: b.Target, progress: Callable[[str], None]) -> list[Result]:
    results: list[Result] = []
    s = target.skill
    progress(f"{s}: live stream")
    live = _attempt(results, "sse.done-last", f"{s}: live stream", lambda: b.check_live_stream(client, target))
    run_id = live.run_id if live is not None else None
    if live is not None:
        _attempt(results, "stream.incremental", f"{s}: incremental delivery", lambda: b.check_incremental(live))
        progress(f"{s}: resume at every cut")
        _attempt(results, "resume.every-cut", f"{s}: resume at every cut", lambda: b.check_resume(client, target, live.run_id))
    progress(f"{s}: second viewer")
    _attempt(results, "runs.second-viewer", f"{s}: second viewer", lambda: b.check_second_viewer(client, target))
    if s == LONG_SKILL:
        progress(f"{s}: cancel")
        _attempt(results, "runs.cancel", f"{s}: cancel", lambda: b.check_cancel(client, target, TICKER_CANCEL_INPUTS))
    else:
        results.append(Result("runs.cancel", f"{s}: cancel", "skipped", f"needs a long run ({LONG_SKILL})"))
    if target.other_key is None:
        results.append(Result("runs.owner-isolation", f"{s}: owner isolation", "skipped", "no --other-key"))
    elif run_id is not None:
        _attempt(results, "runs.owner-isolation", f"{s}: owner isolation", lambda: b.check_isolation(client, target, run_id))
    _attempt(results, "ratelimit.headers", "rate-limit headers", lambda: b.check_rate_limit_headers(client, target))
    _attempt(results, "http.problem-json", f"{s}: errors before the first byte", lambda: b.check_problems(client, target))
    return results
