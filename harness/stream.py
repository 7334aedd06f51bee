"""Run one request through an adapter and keep everything that happened, errors included."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from adapters import End, HttpAdapter, TaskRequest, Token, TokenEvent, WorkerError
from adapters.errors import ErrorKind

__all__ = ["StreamRecord", "collect"]

_GRACE_S = 5.0


@dataclass(slots=True)
class StreamRecord:
    request: TaskRequest
    events: list[TokenEvent] = field(default_factory=list)
    error: WorkerError | None = None
    sent_at: float = 0.0
    cancelled_at: float | None = None
    tokens_after_cancel: int = 0

    @property
    def tokens(self) -> list[Token]:
        return [e for e in self.events if isinstance(e, Token)]

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.tokens)

    @property
    def end(self) -> End | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, End) else None

    @property
    def ttft(self) -> float | None:
        first = next((t for t in self.tokens), None)
        return None if first is None else first.at - self.sent_at

    def describe_error(self) -> str:
        return "no error" if self.error is None else str(self.error)


async def collect(adapter: HttpAdapter, request: TaskRequest, *, cancel_after: int | None = None) -> StreamRecord:
    """Stream `request` to the end (or cancel after `cancel_after` tokens); never raises WorkerError.

    A harness-side wall limit (total timeout plus a grace period) guards against
    an adapter bug turning an engine stall into a hang.
    """
    record = StreamRecord(request, sent_at=time.monotonic())
    wall = adapter.options.timeouts.total + _GRACE_S
    try:
        async with asyncio.timeout(wall):
            async with contextlib.aclosing(adapter.submit(request)) as events:
                async for event in events:
                    if record.cancelled_at is not None and isinstance(event, Token):
                        record.tokens_after_cancel += 1
                    record.events.append(event)
                    if (
                        cancel_after is not None
                        and record.cancelled_at is None
                        and _token_count(record) >= cancel_after
                    ):
                        record.cancelled_at = time.monotonic()
                        await adapter.cancel(request.task_id)
    except WorkerError as error:
        record.error = error
    except TimeoutError:
        record.error = WorkerError(
            ErrorKind.DEADLINE_UNMET,
            f"the harness stopped waiting after {wall:g} s (total timeout plus grace)",
        )
    return record


def _token_count(record: StreamRecord) -> int:
    return sum(1 for e in record.events if isinstance(e, Token))
