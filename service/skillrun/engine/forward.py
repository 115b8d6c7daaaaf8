"""Nested skills: their step events, forwarded into the parent's stream."""

from __future__ import annotations

from typing import Any

from ..events import Emitter


class Forward:
    """Forwards a nested skill's step events into the parent's stream.

    The nested step ``b`` of parent step ``a`` (item ``i`` of a foreach) appears as
    step ``a/b`` (``a[i]/b``) with ``parent_step_id`` (the parent's ``step_id`` as its
    own events carry it), ``parent_index`` and ``path`` (plain step ids from the
    root), so a client can draw the tree. The nested run's own ``skill_start`` and
    ``skill_completed`` are not forwarded: a stream has one of each.
    """

    __slots__ = ("parent", "parent_step_id", "parent_index", "plain_id", "prefix")

    def __init__(self, parent: Emitter, parent_step_id: str, plain_id: str, index: int | None) -> None:
        self.parent = parent
        self.parent_step_id = parent_step_id
        self.parent_index = index
        self.plain_id = plain_id
        self.prefix = parent_step_id if index is None else f"{parent_step_id}[{index}]"

    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        if step_id is None:
            return
        data = dict(data) if data else {}
        if "parent_step_id" in data:  # from deeper down: make it relative to the root
            data["parent_step_id"] = f"{self.prefix}/{data['parent_step_id']}"
            data["path"] = [self.plain_id, *data["path"]]
        else:
            data["parent_step_id"] = self.parent_step_id
            if self.parent_index is not None:
                data["parent_index"] = self.parent_index
            data["path"] = [self.plain_id, step_id]
        self.parent.emit(type, message, f"{self.prefix}/{step_id}", data)
