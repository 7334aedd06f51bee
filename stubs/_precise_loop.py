"""An event loop whose timers fire when they are due, not at the next whole millisecond.

asyncio waits in ``epoll_wait``, which takes whole milliseconds: a timer due in
2.3 ms wakes the loop after 3 ms. A stub scripted at 10 ms per token then
writes each token up to 1 ms late, which is the whole error a latency check or
benchmark sees. Here the epoll set also holds a ``timerfd``, armed with the
exact timeout before every wait: the kernel wakes the loop at the due
nanosecond, and the millisecond timeout stays as a backstop. The timer's
descriptor has no selector key, so its events are dropped as asyncio would drop
any unknown descriptor's; it is edge-triggered, so an expiry wakes the loop
once and is never read.

Linux only (``timerfd``, through libc); elsewhere `precise_event_loop` gives the
default loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import select
import selectors
import sys
from typing import Any

__all__ = ["precise_event_loop"]

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class _TimerFd:
    """A one-shot monotonic timerfd, armed with a relative timeout."""

    def __init__(self, libc: Any) -> None:
        self._settime = libc.timerfd_settime
        self.fd: int = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)

    def arm(self, seconds: float) -> None:
        whole = int(seconds)
        value = self._spec.it_value
        value.tv_sec = whole
        value.tv_nsec = max(1, int((seconds - whole) * 1e9))  # 0 and 0 would disarm it
        self._settime(self.fd, 0, self._spec_ref, None)

    def close(self) -> None:
        os.close(self.fd)


class _PreciseEpollSelector(selectors.EpollSelector):
    def __init__(self, libc: Any) -> None:
        self._timer = _TimerFd(libc)  # first: if it fails, there is no epoll object yet to close
        super().__init__()
        epoll: select.epoll = self._selector  # type: ignore[attr-defined]  # the selector's own epoll object
        try:
            epoll.register(self._timer.fd, select.EPOLLIN | select.EPOLLET)
        except OSError:
            self.close()
            raise

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            self._timer.arm(timeout)
        return super().select(timeout)

    def close(self) -> None:
        super().close()
        self._timer.close()


def _libc() -> Any | None:
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if not hasattr(libc, "timerfd_create"):
        return None
    libc.timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.timerfd_settime.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    return libc


def precise_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop with sub-millisecond timers (Linux); the default kind of loop elsewhere."""
    libc = _libc()
    if libc is None:
        return asyncio.new_event_loop()
    try:
        selector = _PreciseEpollSelector(libc)
    except OSError:  # no timerfd here (a sandbox may refuse it): millisecond timers, as asyncio has them
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(selector)
