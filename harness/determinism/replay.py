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
from .compare import BURST, Completion, Observation

__all__ = ["Replica", "Window"]

_STAGGER_S = 0.01
"""Head start of the measured request under load, so that the engine admits it first."""


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

    async def _observe(self, request: TaskRequest, mode: str) -> Observed | WorkerError:
        """One stream, or the error that ended it: a failed stream is that slot's result, not the run's end."""
        try:
            observed = await observe(self.adapter, request)
        except WorkerError as error:
            return error
        if self.sampler is None and mode == "solo":
            self.sampler = observed.sampler
        if observed.timing is not None:
            self.timings.append(observed.timing)
        return observed

    def _observation(
        self, request_id: str, slot: Slot, seen: Observed | WorkerError, overlap: int | None = None
    ) -> Observation:
        if isinstance(seen, WorkerError):
            return Observation.failed(request_id, slot, seen.kind.value, seen.message)
        return Observation(request_id, slot, seen.completion, overlap)

    async def solo(self, requests: Sequence[tuple[str, TaskRequest]], repeat: int) -> list[Observation]:
        """Each request alone on this replica, `repeat` times, one after the other."""
        observations = []
        for request_id, request in requests:
            for run in range(repeat):
                slot = Slot(replica=self.number, mode="solo", repeat=run)
                observations.append(self._observation(request_id, slot, await self._observe(request, "solo")))
            self.progress(f"replica {self.number} solo    {request_id}{_failed(observations[-repeat:])}")
        return observations

    async def under_load(
        self,
        requests: Sequence[tuple[str, TaskRequest]],
        concurrency: int,
        repeat: int,
        corpus: Sequence[tuple[str, TaskRequest]] | None = None,
    ) -> list[Observation]:
        """Each request while `concurrency` others (the requests after it in `corpus`, by default `requests`
        themselves, longer) are in flight."""
        observations = []
        pool = list(corpus or requests)
        order = {request_id: n for n, (request_id, _) in enumerate(pool)}
        for request_id, request in requests:
            position = order[request_id]
            others = [pool[(position + k) % len(pool)][1] for k in range(1, concurrency + 1)]
            for run in range(repeat):
                seen, overlap = await self._loaded(request, others)
                slot = Slot(replica=self.number, mode="load", repeat=run)
                observations.append(self._observation(request_id, slot, seen, overlap))
            progress = f"replica {self.number} load    {request_id} (overlap {overlap})"
            self.progress(progress + _failed(observations[-repeat:]))
        return observations

    async def _loaded(self, request: TaskRequest, others: Sequence[TaskRequest]) -> tuple[Observed | WorkerError, int]:
        """The measured stream, and how many of the others generated while it did (a failed one: none)."""
        measured = asyncio.ensure_future(self._observe(request, "load"))
        await asyncio.sleep(_STAGGER_S)
        longer = [o.model_copy(update={"max_tokens": max(o.max_tokens, request.max_tokens * 2)}) for o in others]
        background = [asyncio.ensure_future(self._observe(o, "load")) for o in longer]
        try:
            seen = await measured
            around = await asyncio.gather(*background)
        finally:
            for task in background:
                task.cancel()
        if isinstance(seen, WorkerError):
            return seen, 0
        windows = [o.window for o in around if isinstance(o, Observed)]
        return seen, sum(1 for w in windows if w.overlaps(seen.window))

    async def burst(
        self, requests: Sequence[tuple[str, TaskRequest]], copies: int, concurrency: int
    ) -> list[Observation]:
        """Each request as `copies` identical requests, `concurrency` of them in flight at once: the
        unique-completions experiment (llama.cpp #7052) users run by hand."""
        observations = []
        gate = asyncio.Semaphore(concurrency)

        async def one(request: TaskRequest) -> Observed | WorkerError:
            async with gate:
                return await self._observe(request, BURST)

        for request_id, request in requests:
            seen = await asyncio.gather(*(one(request) for _ in range(copies)))
            observations += [
                self._observation(request_id, Slot(replica=self.number, mode=BURST, repeat=n), result)
                for n, result in enumerate(seen)
            ]
            unique = len({o.completion.key for o in observations[-copies:] if o.failure is None})
            line = f"replica {self.number} burst   {request_id} ({copies} at {concurrency} at once: {unique} unique)"
            self.progress(line + _failed(observations[-copies:]))
        return observations

    async def with_prompt_cache(self, requests: Sequence[tuple[str, TaskRequest]]) -> list[Observation]:
        """Each request twice with the prompt cache on: the second reuses the cache the first filled."""
        observations = []
        for request_id, request in requests:
            cached = request.model_copy(update={"cache_prompt": True})
            filled = await self._observe(cached, "cache")
            seen = filled if isinstance(filled, WorkerError) else await self._observe(cached, "cache")
            observations.append(self._observation(request_id, Slot(replica=self.number, mode="cache"), seen))
            self.progress(f"replica {self.number} cache   {request_id}{_failed(observations[-1:])}")
        return observations


def _failed(observations: Sequence[Observation]) -> str:
    """A progress line's note of the streams that failed, by their error kind."""
    kinds = [o.failure.kind for o in observations if o.failure is not None]
    return f"  FAILED ({', '.join(kinds)})" if kinds else ""
