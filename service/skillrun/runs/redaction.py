"""Secret inputs (see ``engine.secret_inputs``: what a skill's inputs schema marks
``writeOnly: true`` or ``format: password``) are never stored and never returned.

The engine gets the real inputs, in memory only. What is stored is:

- the run record's ``inputs`` with every secret value replaced by ``PLACEHOLDER``
  (whatever its type);
- every event, and the result in ``done``, with each occurrence of a secret
  string replaced by ``PLACEHOLDER``, before the event is appended: a step that
  echoes the secret into its output, an error message or a nested skill's
  events cannot put it into the log. ``/execute`` answers with the result the
  log holds, so it is scrubbed too (``/execute``, ``done`` and
  ``GET /v1/runs/{id}`` stay one and the same result).

Only the value as given is found, in a few spellings a step may turn it into
(percent-encoded as in a URL, escaped as inside a JSON text); a step that
transforms it otherwise (base64, upper case, a hash) is the skill author's to
keep out of outputs. A secret number is replaced where it appears as a value in
a step's output or the skill's outputs, and its digits in text; a secret boolean
is redacted in the record only (one bit cannot be searched for).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus

from ..engine import Skill
from ..engine.secret_inputs import PLACEHOLDER, Leaf, redact
from .store import RunStore
from .writer import RunWriter, event_text

__all__ = ["PLACEHOLDER", "RunInputs", "Scrubber", "ScrubbingWriter"]

# The contract's vocabulary (ids, enums, times from the server or the skill file,
# never from a step's data): not searched, so a short secret inside e.g.
# "completed" cannot break an event's schema. Containers below them still are.
_VOCABULARY = frozenset({
    "type", "timestamp", "step_id", "trace_id", "run_id", "skill_id", "version",
    "execution_channel", "status", "uses", "gate", "stage", "policy", "fallback",
    "on_error", "parent_step_id", "path", "id", "steps",
})
# Free-form data (a step's output, the skill's outputs): searched whole, keys too.
_FREE_FORM = frozenset({"produced_output", "outputs"})


class Scrubber:
    """Replaces every occurrence of the secrets in an event's payload."""

    def __init__(self, secrets: list[Leaf]) -> None:
        # Equal numbers in data are the secret too (1 == 1.0, as JSON has one number type).
        self._numbers = {n for n in secrets if not isinstance(n, str)}
        spellings: set[str] = {json.dumps(n) for n in self._numbers}
        for s in secrets:
            if isinstance(s, str):
                spellings.update((s, quote(s, safe=""), quote_plus(s), json.dumps(s)[1:-1],
                                  json.dumps(s, ensure_ascii=False)[1:-1]))
        spellings.discard("")
        # Longest first, so a secret that contains another is replaced whole.
        self._spellings = sorted(spellings, key=len, reverse=True)

    def text(self, s: str) -> str:
        """``s`` with every occurrence of a secret replaced.

        ``str.find`` per spelling, not a regex alternation: the alternation backtracks
        at every position (a 2 KB secret over 80 KB of text: 80 ms), ``find`` stays
        linear, and both the secret and the text are the caller's to choose.
        """
        spans: list[tuple[int, int]] = []
        for spelling in self._spellings:
            at = s.find(spelling)
            while at != -1:
                spans.append((at, at + len(spelling)))
                at = s.find(spelling, at + len(spelling))
        if not spans:
            return s
        spans.sort()
        out: list[str] = []
        pos, start, end = 0, spans[0][0], spans[0][1]
        for a, b in spans[1:]:
            if a <= end:  # overlapping or adjacent: one placeholder
                end = max(end, b)
                continue
            out += (s[pos:start], PLACEHOLDER)
            pos, start, end = end, a, b
        out += (s[pos:start], PLACEHOLDER, s[end:])
        return "".join(out)

    def payload(self, value: Any) -> Any:
        """An event or result: free text scrubbed, the contract's vocabulary kept."""
        return self._copy(value, free=False)

    def free(self, value: Any) -> Any:
        """Free-form data: every string (keys too) and every secret number."""
        return self._copy(value, free=True)

    def _copy(self, root: Any, free: bool) -> Any:
        # Iterative, not recursive: a step's output may nest as deep as the JSON
        # parser allowed (an http.request answer), deeper than Python's stack.
        if not isinstance(root, (dict, list)):
            return self._leaf(root, free)
        top: dict[str, Any] | list[Any] = {} if isinstance(root, dict) else []
        stack: list[tuple[Any, Any, bool]] = [(root, top, free)]
        while stack:
            src, dst, free_here = stack.pop()
            pairs = src.items() if isinstance(src, dict) else enumerate(src)
            for k, v in pairs:
                if isinstance(src, dict) and not free_here and k in _VOCABULARY and (
                    isinstance(v, str) or _all_strings(v)
                ):
                    dst[k] = v
                    continue
                free_v = free_here or (isinstance(src, dict) and k in _FREE_FORM)
                if isinstance(v, (dict, list)):
                    child: dict[str, Any] | list[Any] = {} if isinstance(v, dict) else []
                    stack.append((v, child, free_v))
                    v = child
                else:
                    v = self._leaf(v, free_v)
                if isinstance(dst, dict):
                    dst[self.text(k) if free_here and isinstance(k, str) else k] = v
                else:
                    dst.append(v)
        return top

    def _leaf(self, value: Any, free: bool) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if free and isinstance(value, (int, float)) and not isinstance(value, bool) and value in self._numbers:
            return PLACEHOLDER
        return value


def _all_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


class ScrubbingWriter(RunWriter):
    """A ``RunWriter`` that scrubs every payload before it is appended (events and ``done``):
    an engine event's whole envelope, not ``RunWriter.emit``'s parts."""

    def __init__(self, store: RunStore, run_id: str, trace_id: str, scrubber: Scrubber, **limits: Any) -> None:
        super().__init__(store, run_id, trace_id, **limits)
        self.scrubber = scrubber

    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        envelope = self.scrubber.payload(self._envelope(type, message, step_id, data))
        self._put(type, event_text(envelope), envelope["step_id"], envelope["data"])

    def append(self, type: str, payload: dict[str, Any]) -> None:
        super().append(type, self.scrubber.payload(payload))


class RunInputs:
    """A run's inputs: ``given`` (for the engine, in memory only) and ``stored``
    (for the run record: secrets replaced by ``PLACEHOLDER``)."""

    __slots__ = ("given", "stored", "scrubber")

    def __init__(self, skill: Skill, inputs: dict[str, Any]) -> None:
        self.given = inputs
        found: list[Leaf] = []
        self.stored: dict[str, Any] = redact(skill.inputs_schema, inputs, found) if skill.secret_inputs else inputs
        values = [s for s in found if s != ""]
        self.scrubber: Scrubber | None = Scrubber(values) if values else None

    def writer(self, store: RunStore, run_id: str, trace_id: str, **limits: Any) -> RunWriter:
        """The run's writer (``limits``: ``RunWriter``'s): one that scrubs the secrets
        from every event, if there are any."""
        if self.scrubber is None:
            return RunWriter(store, run_id, trace_id, **limits)
        return ScrubbingWriter(store, run_id, trace_id, self.scrubber, **limits)
