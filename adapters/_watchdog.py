"""The idle and total limits of a stream's reads: one timer per stream, re-armed only when it fires.

``asyncio.timeout_at`` around each read schedules a timer and cancels it again
for every chunk: on a token stream, a read per token, that is a timer per
token, and a noticeable share of the client's CPU. A stream's limits rarely
expire, so here one timer stands for them all: each wait only notes when it
began, and when the timer fires it checks the wait that is on. A wait that began
after the timer was set has not run out yet: the timer is set again for when it
would, and fires early, never late. One that has run out cancels the task, as
``asyncio.timeout`` does, and the reader turns that into its own error.
"""

from __future__ import annotations

import asyncio

__all__ = ["Watchdog"]


class Watchdog:
    """Cancels the task that created it when one of its waits lasts `idle` seconds, or reaches `deadline`
    (the event loop's time). Wrap each wait in `waiting` and `done_waiting`; `close` it at the end."""

    __slots__ = (
        "_cancelling",
        "_deadline",
        "_fired",
        "_handle",
        "_idle",
        "_loop",
        "_task",
        "_waiting_since",
        "idle_expired",
    )

    def __init__(self, idle: float, deadline: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Watchdog guards the waits of a task: create it inside one")
        self._task = task
        self._cancelling = task.cancelling()
        self._idle = idle
        self._deadline = deadline
        self._waiting_since: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False
        self.idle_expired = False
        """Which limit ran out, once one did: the idle one (else the deadline)."""

    def waiting(self) -> None:
        """A wait begins now."""
        now = self._loop.time()
        self._waiting_since = now
        if self._handle is None:
            self._handle = self._loop.call_at(min(now + self._idle, self._deadline), self._check)

    def done_waiting(self) -> None:
        self._waiting_since = None

    def expired(self) -> bool:
        """Whether a CancelledError that ended a wait came from here; if so the task is no longer cancelled
        (``Task.uncancel``, as ``asyncio.timeout`` does), and the caller raises its timeout error instead."""
        return self._fired and self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        since = self._waiting_since
        if since is None or self._fired:
            return  # between waits: the next wait sets the timer again
        idle_at = since + self._idle
        due = min(idle_at, self._deadline)
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self._fired = True
        self.idle_expired = idle_at <= self._deadline
        self._task.cancel()
