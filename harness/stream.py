"""Run one request through an adapter and keep everything that happened, errors included."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
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
    _tokens: list[Token] = field(default_factory=list, repr=False)
    _tokens_of: int = field(default=-1, repr=False)
    """How many events `_tokens` was computed from: every check reads tokens, so compute them once."""

    @property
    def tokens(self) -> list[Token]:
        if self._tokens_of != len(self.events):
            self._tokens = [e for e in self.events if isinstance(e, Token)]
            self._tokens_of = len(self.events)
        return self._tokens

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.tokens)

    @property
    def end(self) -> End | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, End) else None


async def collect(adapter: HttpAdapter, request: TaskRequest, *, cancel_after: int | None = None) -> StreamRecord:
    """Stream `request` to the end (or cancel after `cancel_after` tokens); never raises WorkerError.

    A harness-side wall limit (total timeout plus a grace period) guards against
    an adapter bug turning an engine stall into a hang.
    """
    record = StreamRecord(request, sent_at=time.monotonic())
    wall = adapter.options.timeouts.total + _GRACE_S
    events = record.events
    try:
        async with asyncio.timeout(wall):
            async with contextlib.aclosing(adapter.submit(request)) as submitted:
                if cancel_after is None:
                    budget, streamed = request.max_tokens, 0
                    async for event in submitted:
                        events.append(event)
                        if type(event) is Token:
                            streamed += 1
                            if streamed > budget:
                                record.error = _over_budget(budget)
                                break
                else:
                    await _until_cancelled(adapter, request, record, submitted, cancel_after)
    except WorkerError as error:
        record.error = error
    except TimeoutError:
        record.error = WorkerError(
            ErrorKind.DEADLINE_UNMET,
            f"the harness stopped waiting after {wall:g} s (total timeout plus grace)",
        )
    return record


def _over_budget(budget: int) -> WorkerError:
    """An engine that streams past max_tokens would stream forever as far as the harness can tell."""
    return WorkerError(
        ErrorKind.PROTOCOL_VIOLATION,
        f"the engine streamed more than max_tokens={budget} tokens (the harness stopped reading)",
        in_stream=True,
    )


async def _until_cancelled(
    adapter: HttpAdapter,
    request: TaskRequest,
    record: StreamRecord,
    submitted: AsyncIterator[TokenEvent],
    cancel_after: int,
) -> None:
    """Read, cancel after `cancel_after` tokens, and keep reading to see what still arrives."""
    seen = 0
    async for event in submitted:
        record.events.append(event)
        if not isinstance(event, Token):
            continue
        if record.cancelled_at is not None:
            record.tokens_after_cancel += 1
            continue
        seen += 1
        if seen >= cancel_after:
            record.cancelled_at = time.monotonic()
            await adapter.cancel(request.task_id)
