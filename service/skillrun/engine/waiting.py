"""Steps that wait for input (``human.input``): where a waiting step instance waits
for its answer, and how an answer reaches it.

A waiting step instance is registered under (run id, full step id, foreach index)
while it waits. Whoever receives an answer (the run manager, for
``POST /v1/runs/{run_id}/input``) looks the instance up, checks the answer against
the schema the step announced, and ``deliver``s it; the step then completes with it.
State lives on one ``Answers`` per engine (no module globals): two apps in one
process never see each other's waits.

Only this process's waiting steps are here: the engine task of a run lives on one
node. An answer for a run this node does not run finds nothing (``NotWaiting``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

import jsonschema

Key = tuple[str, str, int | None]  # (run id, full step id, foreach index)


class NotWaiting(Exception):
    """No step instance waits under that key (``str``: why, for the 409's detail)."""


@dataclass(slots=True)
class Waiter:
    """One waiting step instance: the schema it announced, and where its answer goes."""

    schema: dict[str, Any]
    answer: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def check(self, value: Any) -> tuple[str, str] | None:
        """Where ``value`` breaks the schema (``value.a.b``, why), or None when it fits."""
        try:
            validator = jsonschema.Draft4Validator(_json_schema(self.schema))
            err = jsonschema.exceptions.best_match(validator.iter_errors(value))
        except jsonschema.exceptions.SchemaError as exc:
            return "value", f"the step's schema is broken, no answer can match it: {exc.message}"
        if err is None:
            return None
        return ".".join(["value", *(str(p) for p in err.absolute_path)]), err.message


def _json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema draft 4: ``nullable: true`` admits null."""
    if isinstance(schema, list):
        return [_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _json_schema(v) for k, v in schema.items() if not (k == "nullable" and isinstance(v, bool))}
    if schema.get("nullable") is True and isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]
    return out


class Answers:
    """The waiting step instances of this process's runs, by ``Key``.

    ``on_change(run_id, waiting)`` is told when a run's first wait opens (True) and
    its last one closes (False): the run manager counts a waiting run as stored,
    not running, meanwhile.
    """

    def __init__(self) -> None:
        self._open: dict[Key, Waiter] = {}
        self._per_run: dict[str, int] = {}
        self.on_change: Callable[[str, bool], None] | None = None

    def open(self, key: Key, schema: dict[str, Any]) -> Waiter:
        if key in self._open:  # one instance cannot wait twice at once
            raise RuntimeError(f"step {key[1]!r} already waits")
        waiter = self._open[key] = Waiter(schema)
        run_id = key[0]
        self._per_run[run_id] = self._per_run.get(run_id, 0) + 1
        if self._per_run[run_id] == 1 and self.on_change is not None:
            self.on_change(run_id, True)
        return waiter

    def close(self, key: Key, waiter: Waiter) -> None:
        """The wait is over (answered, timed out or stopped)."""
        if self._open.get(key) is not waiter:
            return
        del self._open[key]
        if not waiter.answer.done():
            waiter.answer.cancel()  # a late answer then finds it closed (409)
        run_id = key[0]
        self._per_run[run_id] -= 1
        if self._per_run[run_id] == 0:
            del self._per_run[run_id]
            if self.on_change is not None:
                self.on_change(run_id, False)

    def get(self, key: Key) -> Waiter:
        """The instance waiting under ``key``; ``NotWaiting`` if none waits (any more)."""
        waiter = self._open.get(key)
        if waiter is None:
            raise NotWaiting("it is not waiting for input")
        if waiter.answer.cancelled():
            raise NotWaiting("its wait is over (it timed out or was stopped)")
        if waiter.answer.done():
            raise NotWaiting("it was answered already")
        return waiter

    def deliver(self, key: Key, value: Any) -> None:
        """Hand ``value`` (already checked against the schema) to the waiting instance."""
        self.get(key).answer.set_result(value)

    def waiting(self, run_id: str) -> int:
        """How many of ``run_id``'s step instances wait now."""
        return self._per_run.get(run_id, 0)
