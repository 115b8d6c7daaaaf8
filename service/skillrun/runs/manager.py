"""Starts runs as tasks that write their logs, cancels them, drains them at shutdown.

The live tasks are this node's business only (to cancel them); nothing that
follows a run needs them: followers read the store.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from ..engine import Engine, Skill
from ..engine.runner import CANCELLED, INTERRUPTED
from .store import RunRecord, RunStore
from .writer import RunWriter, utc_now

log = logging.getLogger(__name__)


class ShuttingDown(Exception):
    """The server is draining and starts no new runs."""


def new_run_id() -> str:
    return "run_" + secrets.token_hex(12)


def new_trace_id() -> str:
    return secrets.token_hex(16)


class RunManager:
    def __init__(self, store: RunStore, engine: Engine) -> None:
        self.store = store
        self.engine = engine
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.draining = False

    async def start(
        self,
        skill: Skill,
        inputs: dict[str, Any],
        *,
        owner: str,
        channel: str,
        trace_id: str | None = None,
        timeout_s: float | None = None,
    ) -> RunRecord:
        if self.draining:
            raise ShuttingDown()
        run = RunRecord(
            run_id=new_run_id(),
            owner=owner,
            skill_id=skill.id,
            trace_id=trace_id or new_trace_id(),
            channel=channel,
            inputs=inputs,
            created_at=utc_now(),
        )
        await self.store.create(run)
        task = asyncio.create_task(self._run(run, skill, timeout_s), name=run.run_id)
        self._tasks[run.run_id] = task
        task.add_done_callback(lambda _t, rid=run.run_id: self._tasks.pop(rid, None))
        return run

    async def _run(self, run: RunRecord, skill: Skill, timeout_s: float | None) -> None:
        writer = RunWriter(self.store, run.run_id, run.trace_id)
        await self.store.set_status(run.run_id, "running")
        started = time.perf_counter()
        try:
            outcome = await self.engine.run(
                skill, run.inputs, writer, channel=run.channel, timeout_s=timeout_s
            )
            status, outputs, steps, error = outcome.status, outcome.outputs, outcome.steps, outcome.error
        except Exception as exc:  # an engine bug must still end the log
            log.exception("run %s crashed", run.run_id)
            status, outputs, steps = "failed", {}, []
            error = {"kind": "internal", "message": f"internal error: {type(exc).__name__}"}
            writer.emit("skill_completed", f"Skill '{skill.id}' failed.", None,
                        {"status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 3)})
        result: dict[str, Any] = {
            "skill_id": skill.id,
            "status": status,
            "outputs": outputs,
            "trace_id": run.trace_id,
            "run_id": run.run_id,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "steps": steps,
        }
        if error is not None:
            result["error"] = error
        writer.append("done", {**result, "type": "done"})
        await self.store.set_status(run.run_id, status, result=result, at=utc_now())

    def cancel(self, run_id: str, reason: str = CANCELLED) -> bool:
        """Cancel a live run on this node; its log ends with ``done`` (status ``reason``)."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        task.cancel(reason)
        return True

    @property
    def live(self) -> int:
        return len(self._tasks)

    async def drain(self, grace_s: float) -> None:
        """Stop starting runs, let running ones finish for ``grace_s``, interrupt the rest."""
        self.draining = True
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel(INTERRUPTED)
        if pending:
            log.warning("interrupted %d run(s) still running after %.1f s", len(pending), grace_s)
            await asyncio.wait(pending, timeout=5)
