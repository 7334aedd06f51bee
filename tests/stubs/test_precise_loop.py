"""The stub's event loop: timers end when due, not at the next whole millisecond, and I/O runs as usual."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys

import httpx
import pytest

from conform.stubs import StubServer, precise_event_loop
from conform.stubs import _precise_loop as precise_loop

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the precise loop uses a timerfd, Linux only")


def lateness_of_short_sleeps(loop: asyncio.AbstractEventLoop, seconds: float, count: int) -> list[float]:
    async def sleeps() -> list[float]:
        late = []
        for _ in range(count):
            due = loop.time() + seconds
            await asyncio.sleep(seconds)
            late.append(loop.time() - due)
        return late

    return loop.run_until_complete(sleeps())


def test_a_sub_millisecond_sleep_is_not_rounded_up_to_a_millisecond() -> None:
    # On asyncio's own loop every one of these 0.2 ms sleeps lasts at least 1 ms (epoll's whole milliseconds).
    loop = precise_event_loop()
    try:
        late = lateness_of_short_sleeps(loop, 0.0002, 21)
    finally:
        loop.close()
    assert min(late) >= 0, "a timer fired early"
    # Rounded up to 1 ms, each would be at least 0.8 ms late: the bound leaves room for a slow wake-up.
    assert statistics.median(late) < 0.0007


def test_it_serves_a_stub_and_closes_its_timer() -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    loop = precise_event_loop()

    async def stream() -> int:
        async with StubServer("llamacpp") as stub, httpx.AsyncClient() as client:
            response = await client.post(stub.url + "/completion", json={"prompt": "hi", "n_predict": 3})
            return len(response.json()["tokens"])

    try:
        assert loop.run_until_complete(stream()) == 3
    finally:
        loop.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_where_the_kernel_refuses_a_timerfd_the_loop_is_asyncios_own(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:
        def timerfd_create(self, clock: int, flags: int) -> int:
            return -1  # what libc returns when a sandbox forbids the call

        def timerfd_settime(self, fd: int, flags: int, new: object, old: object) -> int:
            raise AssertionError("a timer that was never made is never armed")

    monkeypatch.setattr(precise_loop, "_libc", Refusing)
    fds_before = len(os.listdir("/proc/self/fd"))
    loop = precise_event_loop()
    try:
        assert loop.run_until_complete(asyncio.sleep(0.001, "slept")) == "slept"
        assert not isinstance(loop._selector, precise_loop._PreciseEpollSelector)  # type: ignore[attr-defined]
    finally:
        loop.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before
