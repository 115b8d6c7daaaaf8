"""What the code ``skillrun-client codegen`` writes builds on: a run's result with its
outputs parsed into the skill's own outputs model, and a skill's inputs checked by its own
inputs model before they are sent.

    from myskills import run_text_summarize
    done = run_text_summarize(client, text="Cats purr. Dogs bark.", max_sentences=1)
    done.outputs.summary        # str | None, typed by the skill's outputs schema
    done.result.run_id          # the whole RunResult
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Mapping, TypeVar

from pydantic import BaseModel

from ._types import RunResult

__all__ = ["TypedResult", "typed_result", "typed_inputs"]

OutputsT = TypeVar("OutputsT", bound=BaseModel)


@dataclass(frozen=True)
class TypedResult(Generic[OutputsT]):
    """A completed run: ``result`` as the server sent it, ``outputs`` parsed by the skill's model."""

    result: RunResult
    outputs: OutputsT


def typed_result(result: RunResult, model: type[OutputsT]) -> TypedResult[OutputsT]:
    """``result`` with typed outputs; :class:`RunFailedError` unless the run completed (the
    outputs of a run that did not complete need not have the skill's shape)."""
    result.raise_for_status()
    return TypedResult(result, model.model_validate(result.outputs))


def typed_inputs(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` checked by the skill's inputs model, as the JSON the server expects.
    A ``None`` means "not given" (the skill's default applies)."""
    given = {name: value for name, value in values.items() if value is not None}
    return model.model_validate(given).model_dump(mode="json", by_alias=True, exclude_unset=True)
