"""Sending seeded requests to one replica: alone, under concurrent load, repeated, with prompt cache on.

Under load, the measured request is sent first and `concurrency` others right
behind it, each asking for more tokens than the measured one so that they are
still generating while it is. Whether they really overlapped is measured, not
assumed: the overlap of a request is how many others produced tokens while it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conform.adapters import End, HttpAdapter, Started, TaskRequest, Token, WorkerError
from conform.reports import Slot

from ..timing import StreamTiming, stream_timing
from .compare import Completion, Observation

__all__ = ["ReplayError", "Replica", "Window"]

_STAGGER_S = 0.01
"""Head start of the measured request under load, so that the engine admits it first."""


class ReplayError(Exception):
    """A request failed on a replica: the run cannot compare what it did not see."""

    def __init__(self, request_id: str, replica: int, mode: str, error: WorkerError) -> None:
        super().__init__(f"request {request_id} failed on replica {replica} ({mode}): {error}")
        self.error = error


@dataclass(frozen=True, slots=True)
class Window:
    """When a stream produced tokens (monotonic seconds)."""

    first: float
    last: float

    def overlaps(self, other: Window) -> bool:
        return self.first <= other.last and other.first <= self.last


_SAMPLER_FIELDS = ("seed", "temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty", "samplers")


@dataclass(frozen=True, slots=True)
class Observed:
    """One stream: its tokens, when it generated them, its latency, and the sampler settings reported."""

    completion: Completion
    window: Window
    timing: StreamTiming | None
    sampler: dict[str, Any] | None


async def observe(adapter: HttpAdapter, request: TaskRequest) -> Observed:
    tokens: list[Token] = []
    sampler: dict[str, Any] | None = None
    sent = time.monotonic()
    async with contextlib.aclosing(adapter.submit(request)) as events:
        async for event in events:
            if isinstance(event, Token):
                tokens.append(event)
            elif isinstance(event, Started) and event.sent_at is not None:
                sent = event.sent_at
            elif isinstance(event, End):
                settings = event.raw.get("generation_settings")
                if isinstance(settings, dict):
                    sampler = {k: settings[k] for k in _SAMPLER_FIELDS if k in settings}
    first = tokens[0].at if tokens else sent
    last = tokens[-1].at if tokens else sent
    timing = stream_timing(sent, [t.at for t in tokens])
    return Observed(Completion.from_tokens(tokens), Window(first, last), timing, sampler)


Progress = Callable[[str], None]


@dataclass
class Replica:
    """One replica under test, identified by its position in --url order."""

    number: int
    adapter: HttpAdapter
    progress: Progress
    sampler: dict[str, Any] | None = None
    """What the replica reported for its first solo request: provenance of the sampling it did."""
    timings: list[StreamTiming] = field(default_factory=list)

    async def _observe(self, request: TaskRequest, request_id: str, mode: str) -> tuple[Completion, Window]:
        try:
            observed = await observe(self.adapter, request)
        except WorkerError as error:
            raise ReplayError(request_id, self.number, mode, error) from None
        if self.sampler is None and mode == "solo":
            self.sampler = observed.sampler
        if observed.timing is not None:
            self.timings.append(observed.timing)
        return observed.completion, observed.window

    async def solo(self, requests: Sequence[tuple[str, TaskRequest]], repeat: int) -> list[Observation]:
        """Each request alone on this replica, `repeat` times, one after the other."""
        observations = []
        for request_id, request in requests:
            for run in range(repeat):
                completion, _ = await self._observe(request, request_id, "solo")
                observations.append(
                    Observation(request_id, Slot(replica=self.number, mode="solo", repeat=run), completion)
                )
            self.progress(f"replica {self.number} solo    {request_id}")
        return observations

    async def under_load(
        self, requests: Sequence[tuple[str, TaskRequest]], concurrency: int, repeat: int
    ) -> list[Observation]:
        """Each request while `concurrency` others (the rest of the corpus, longer) are in flight."""
        observations = []
        for position, (request_id, request) in enumerate(requests):
            others = [requests[(position + k) % len(requests)][1] for k in range(1, concurrency + 1)]
            for run in range(repeat):
                completion, overlap = await self._loaded(request_id, request, others)
                slot = Slot(replica=self.number, mode="load", repeat=run)
                observations.append(Observation(request_id, slot, completion, overlap))
            self.progress(f"replica {self.number} load    {request_id} (overlap {overlap})")
        return observations

    async def _loaded(
        self, request_id: str, request: TaskRequest, others: Sequence[TaskRequest]
    ) -> tuple[Completion, int]:
        measured = asyncio.ensure_future(self._observe(request, request_id, "load"))
        await asyncio.sleep(_STAGGER_S)
        longer = [o.model_copy(update={"max_tokens": max(o.max_tokens, request.max_tokens * 2)}) for o in others]
        background = [asyncio.ensure_future(self._observe(o, f"{request_id} (load)", "load")) for o in longer]
        try:
            completion, window = await measured
            windows = [w for _, w in await asyncio.gather(*background)]
        finally:
            for task in background:
                task.cancel()
        return completion, sum(1 for w in windows if w.overlaps(window))

    async def with_prompt_cache(self, requests: Sequence[tuple[str, TaskRequest]]) -> list[Observation]:
        """Each request twice with the prompt cache on: the second reuses the cache the first filled."""
        observations = []
        for request_id, request in requests:
            cached = request.model_copy(update={"cache_prompt": True})
            await self._observe(cached, request_id, "cache")
            completion, _ = await self._observe(cached, request_id, "cache")
            observations.append(Observation(request_id, Slot(replica=self.number, mode="cache"), completion))
            self.progress(f"replica {self.number} cache   {request_id}")
        return observations
