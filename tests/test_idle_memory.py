"""What keeps an idle stream small (bench/stream.py (d)) behaves as what it replaced:
a store's change notification (``store.Changed``) as an ``asyncio.Event`` swapped per
change, the edge's slim event as ``asyncio.Event``, and the SSE response's disconnect
listener as starlette's task group (a disconnect ends the body quietly, an error from
``receive`` ends it with that error, a cancel from outside goes on)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import pytest

from skillrun.http.handlers._stream import EventStreamResponse
from skillrun.runs.store import Changed, wait_changed
import skillrun.slimevent
from skillrun.slimevent import SlimEvent

pytestmark = pytest.mark.anyio


async def test_changed_wakes_every_waiter_once_and_forgets_those_that_left() -> None:
    changed = Changed()
    assert not await wait_changed(changed, 0.01)  # nothing changed: the timeout
    assert changed._waiters == []  # the one that timed out left the list
    waiters = [asyncio.ensure_future(wait_changed(changed, 5)) for _ in range(3)]
    await asyncio.sleep(0)
    changed.notify()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert changed._waiters is None
    # A change before the wait is not seen by it: it waits for the next one.
    assert not await wait_changed(changed, 0.01)


async def test_waits_with_a_time_limit_share_the_loop_s_timers() -> None:
    """``wait_for``'s limit is a place in a 10 ms slot, not a timer of its own: 200
    waits ending together add a timer or two to the loop, not 200; each still ends on
    time (False), or True at once when notified, and leaves nothing behind."""
    changed = Changed()
    loop = asyncio.get_running_loop()
    timers = len(loop._scheduled)  # type: ignore[attr-defined]
    began = loop.time()
    waits = [asyncio.ensure_future(changed.wait_for(0.2)) for _ in range(200)]
    await asyncio.sleep(0)
    assert len(loop._scheduled) - timers <= 2  # type: ignore[attr-defined]
    assert await asyncio.gather(*waits) == [False] * 200
    assert 0.2 <= loop.time() - began < 0.4
    assert changed._waiters == []
    woken = [asyncio.ensure_future(changed.wait_for(5)) for _ in range(3)]
    cancelled = asyncio.ensure_future(changed.wait_for(5))
    await asyncio.sleep(0)
    cancelled.cancel()
    changed.notify()
    assert await asyncio.gather(*woken) == [True, True, True]
    assert cancelled.cancelled()
    slots = skillrun.slimevent._SLOTS[loop]
    assert not any(slots.slots.values())  # the ended waits are not held until their slot
    assert await changed.wait_for(0) is False  # no time left and not set: at once
    changed.set()
    assert await changed.wait_for(0) is True  # set: at once, whatever the limit


async def test_slim_event_is_an_asyncio_event() -> None:
    event = SlimEvent()
    assert not event.is_set()
    waiter = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    event.set()
    event.clear()  # the waiter was woken by the set: it still returns
    assert await waiter is True
    event.set()
    assert await event.wait() is True  # set: at once
    event.clear()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await event.wait()
    assert event._waiters == []
    assert SlimEvent(True).is_set()


async def test_a_slim_event_waiter_is_resolved_by_set_and_forgotten_when_not_wanted() -> None:
    event = SlimEvent()
    fut = event.waiter()
    assert not fut.done()
    event.set()
    assert fut.done() and fut.result() is True
    assert event.waiter().done()  # set: done at once
    event.clear()
    unwanted = event.waiter()
    event.forget(unwanted)
    assert unwanted.cancelled() and event._waiters == []


SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}}


class _Chunks:
    """``Frames`` of the chunks an async iterator gives."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks

    def open(self) -> None:
        pass

    async def next(self) -> bytes | None:
        try:
            return await anext(self.chunks)
        except StopAsyncIteration:
            return None

    def frame(self, chunk: bytes) -> bytes:
        return chunk

    def close(self) -> None:
        pass


def _response(chunks: AsyncIterator[bytes], abandoned: list[bool]) -> EventStreamResponse:
    return EventStreamResponse(_Chunks(chunks), headers={}, send_timeout_s=5, on_abandon=lambda: abandoned.append(True))


async def _forever() -> AsyncIterator[bytes]:
    while True:
        yield b": ping\n\n"
        await asyncio.sleep(0.01)


async def test_a_disconnect_ends_the_body_quietly_and_the_stream_is_abandoned() -> None:
    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    abandoned: list[bool] = []
    call = asyncio.ensure_future(_response(_forever(), abandoned)(SCOPE, receive, send))
    await asyncio.sleep(0.05)
    gone.set()
    await asyncio.wait_for(call, 2)  # ends without an error
    assert sent[0]["type"] == "http.response.start" and len(sent) > 2
    assert abandoned == [True]
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_a_whole_body_is_not_abandoned() -> None:
    async def two() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    abandoned: list[bool] = []
    await asyncio.wait_for(_response(two(), abandoned)(SCOPE, receive, send), 2)
    assert [m.get("body") for m in sent[1:]] == [b"a", b"b", b""]
    assert abandoned == []


async def test_an_error_from_receive_ends_the_body_with_it() -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.02)
        raise RuntimeError("receive broke")

    async def send(message: dict[str, Any]) -> None:
        pass

    abandoned: list[bool] = []
    with pytest.raises(RuntimeError, match="receive broke"):
        await asyncio.wait_for(_response(_forever(), abandoned)(SCOPE, receive, send), 2)
    assert abandoned == [True]


async def test_a_cancel_from_outside_goes_on() -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    abandoned: list[bool] = []
    call = asyncio.ensure_future(_response(_forever(), abandoned)(SCOPE, receive, send))
    await asyncio.sleep(0.03)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert abandoned == [True]


def _coroutines_of(task: asyncio.Task[Any]) -> list[str]:
    """The qualnames of the coroutines a task's await chain holds, outermost first."""
    names: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        names.append(getattr(coro, "__qualname__", type(coro).__name__))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return names


@pytest.mark.parametrize(("max_parallel", "slim"), [(1, True), (1, False), (2, True)])
async def test_a_waiting_foreach_item_holds_no_coroutine_around_its_instance_or_its_call(
    max_parallel: int, slim: bool
) -> None:
    """A run whose step waits (demo.ticker's 60 s ticks: bench/stream.py (d)) holds its
    frames as long as it waits: an inline foreach item has no ``one`` coroutine around
    its instance, on the slim path (``StepLife.plain``) as on the general one
    (``StepLife.live``), and a call without slot, span or time limit no ``_invoke``
    around the capability. Items in a pool still have theirs (their tasks run ``one``);
    outcomes and failures are the same either way."""
    from engine_util import engine_for, run, skill

    s = skill(f"""
        id: t.tick
        version: "1"
        inputs: {{type: object, properties: {{ms: {{type: integer}}}}}}
        steps:
          - id: tick
            uses: util.sleep
            foreach: range(2)
            max_parallel: {max_parallel}
            input: {{ms: "${{inputs.ms}}"}}
    """)
    engine = engine_for(s)
    engine.slim = slim
    task = asyncio.ensure_future(run(engine, s, {"ms": 60_000}))
    await asyncio.sleep(0.05)
    if max_parallel == 1:
        chain = _coroutines_of(task)
        assert "_Run._foreach" in chain and ("StepLife.plain" if slim else "StepLife.live") in chain, chain
        assert "_Run._foreach.<locals>.one" not in chain and "_Run._item.<locals>.one" not in chain
        # util.sleep hands back asyncio's sleep itself: the call awaits it, nothing between.
        assert "_Run._invoke" not in chain and "_sleep_and_report" not in chain, chain
        assert chain[chain.index("_Run._call") + 1] == "sleep", chain
    else:
        items = [t for t in asyncio.all_tasks() if t.get_name().startswith("step:tick[")]
        assert len(items) == 2 and all(_coroutines_of(t)[0] == "_Run._item.<locals>.one" for t in items)
    task.cancel()
    outcome, _rec, _events = await task  # the engine ends a cancelled run with its fates
    assert outcome.status == "cancelled"
    outcome, _rec, events = await run(engine, s, {"ms": 1})
    assert outcome.status == "completed"
    assert [e["data"]["index"] for e in events if e["type"] == "step_completed"] == [0, 1]
