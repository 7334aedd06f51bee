"""Run one request through an adapter and keep everything that happened, errors included."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from conform.adapters import End, HttpAdapter, Started, TaskRequest, Token, TokenEvent, WorkerError
from conform.adapters.errors import ErrorKind

__all__ = ["StreamRecord", "collect"]

_GRACE_S = 5.0


@dataclass(slots=True)
class StreamRecord:
    request: TaskRequest
    events: list[TokenEvent] = field(default_factory=list)
    error: WorkerError | None = None
    sent_at: float = 0.0
    """When the request went out (monotonic seconds): first when the harness asked, then, once the stream
    starts, when the adapter wrote it to the connection."""
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

    def started(self, event: Started) -> None:
        if event.sent_at is not None:
            self.sent_at = event.sent_at

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
                    streamed, give_up = 0, _reading_limit(request.max_tokens)
                    async for event in submitted:
                        events.append(event)
                        if type(event) is Token:
                            streamed += 1
                            if streamed > give_up:
                                record.error = _over_budget(request.max_tokens, streamed)
                                break
                        elif type(event) is Started:
                            record.started(event)
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


def _reading_limit(budget: int) -> int:
    """Tokens read before giving up on a stream: well past the budget, so that one duplicated or extra
    token is left for the ordering and usage checks to name, while an endless stream is still cut off."""
    return 2 * budget + 16


def _over_budget(budget: int, streamed: int) -> WorkerError:
    """An engine that streams far past max_tokens would stream forever as far as the harness can tell."""
    return WorkerError(
        ErrorKind.PROTOCOL_VIOLATION,
        f"the engine ignored max_tokens={budget}: {streamed} tokens and still streaming (the harness stopped reading)",
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
            if isinstance(event, Started):
                record.started(event)
            continue
        if record.cancelled_at is not None:
            record.tokens_after_cancel += 1
            continue
        seen += 1
        if seen >= cancel_after:
            record.cancelled_at = time.monotonic()
            await adapter.cancel(request.task_id)
