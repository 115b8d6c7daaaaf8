"""Schemathesis (its Python API) over the served spec, with the stream rules as a check."""

from __future__ import annotations

import copy
import re
import time
from typing import Any, Callable

from .report import Result
from .schemas import rename_content_keywords
from .sse import RULES, RuleViolation, check_stream

RULE_IN_MESSAGE = re.compile(r"\[(" + "|".join(map(re.escape, RULES)) + r")\]")


def _is_stream(response: Any) -> bool:
    kind = response.headers.get("content-type") or [""]
    kind = kind[0] if isinstance(kind, list) else kind
    return str(kind).split(";")[0].strip().lower() == "text/event-stream"


def stream_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every ``/execute/stream`` answer holds the stream rules (resumed streams are checked live)."""
    if not _is_stream(response) or not case.operation.path.endswith("/execute/stream"):
        return None
    trace = response.headers.get("x-trace-id")
    headers = {k.lower(): v for k, v in (case.headers or {}).items()}
    # With an Idempotency-Key the answer may replay an earlier run, whose trace id is its own.
    sent = None if "idempotency-key" in headers else headers.get("x-trace-id")
    check_stream(response.content.decode("utf-8"), header_trace=trace[0] if isinstance(trace, list) else trace,
                 sent_trace=sent)
    return True


def fuzz(url: str, key: str, spec: dict[str, Any], max_examples: int,
         fold: Callable[[Any], None], progress: Callable[[str], None]) -> list[Result]:
    """One result per operation: positive and negative cases, every built-in check."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from schemathesis import GenerationMode
    from schemathesis.config import SchemathesisConfig

    raw = rename_content_keywords(copy.deepcopy(spec))
    config = SchemathesisConfig()
    config.projects.override.base_url = url
    # Never cut a stream short: the rules need its `done` (generated runs are small).
    config.projects.override.max_stream_events = 100_000
    # 413 is the documented answer to a body over the server's size limit, and an
    # invalid value can be large (a string one past `maxLength`, escaped in JSON).
    rejection = config.projects.override.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    schema = schemathesis.openapi.from_dict(raw, config=config)
    results = []
    for item in schema.get_all_operations():
        operation = item.ok()  # type: ignore[union-attr]  # an invalid schema raised at load
        name = f"{operation.method.upper()} {operation.path}"
        progress(name)
        started = time.monotonic()
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

        @given(case=strategy)
        @settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
        def test(case: Any) -> None:
            fold(case)
            response = case.call(headers={"x-api-key": key}, timeout=60)
            case.validate_response(response, additional_checks=[stream_rules])

        try:
            test()
            results.append(Result("contract.schemathesis", name, "passed", seconds=time.monotonic() - started))
        except RuleViolation as exc:
            results.append(Result(exc.rule, name, "failed", exc.message, time.monotonic() - started))
        except BaseException as exc:  # noqa: BLE001 - a Failure or FailureGroup from schemathesis
            if isinstance(exc, KeyboardInterrupt):
                raise
            codes = sorted({getattr(f, "code", "ST") for f in getattr(exc, "exceptions", [exc])})
            # A stream rule broken inside schemathesis comes back wrapped; keep its own id.
            named = RULE_IN_MESSAGE.search(str(exc))
            rule = named.group(1) if named else f"contract.{codes[0]}" if len(codes) == 1 else "contract.schemathesis"
            results.append(Result(rule, name, "failed", f"{' '.join(codes)}: {exc}"[:4000], time.monotonic() - started))
    return results
