"""The stream limits' one timer: it cancels a wait that ran out, only such a wait, and is not set per wait."""

from __future__ import annotations

import asyncio

import pytest

from conform.adapters._watchdog import Watchdog

IDLE_S = 0.05


async def guarded_waits(watchdog: Watchdog, waits: list[float], gap_s: float = 0.0) -> str:
    """Each wait guarded, with unguarded time between them; how it ended."""
    try:
        for seconds in waits:
            watchdog.waiting()
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                if watchdog.expired():
                    return "idle" if watchdog.idle_expired else "deadline"
                raise
            watchdog.done_waiting()
            await asyncio.sleep(gap_s)
        return "finished"
    finally:
        watchdog.close()


async def test_a_wait_longer_than_idle_is_cut_at_idle() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await guarded_waits(Watchdog(IDLE_S, started + 10), [0.01, 0.01, 5.0]) == "idle"
    assert loop.time() - started < 1.0


async def test_short_waits_past_the_deadline_end_at_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.15
    assert await guarded_waits(Watchdog(IDLE_S, deadline), [0.03] * 20) == "deadline"
    assert loop.time() >= deadline


async def test_time_between_waits_does_not_count_as_idle() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(IDLE_S, loop.time() + 10)
    assert await guarded_waits(watchdog, [0.01] * 4, gap_s=2 * IDLE_S) == "finished"


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    loop = asyncio.get_running_loop()

    async def guarded() -> str:
        return await guarded_waits(Watchdog(IDLE_S, loop.time() + 10), [5.0])

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_one_timer_serves_many_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(IDLE_S, loop.time() + 10)
    timers: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when: float, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        if getattr(callback, "__self__", None) is watchdog:  # not the sleeps' own timers
            timers.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    assert await guarded_waits(watchdog, [0.001] * 200) == "finished"
    assert 1 <= len(timers) < 20, f"{len(timers)} timers for 200 waits"
