"""What an engine does while every slot is generating (``health.under_load``): generations are started and
kept running while the engine is asked about itself; the check reads what came back and how fast."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from dataclasses import dataclass

from conform.adapters import Capability, ErrorKind, Health, HttpAdapter, TaskRequest, Token, WorkerError

from .checks import CheckFailure
from .stream import StreamRecord, collect

__all__ = [
    "HealthProbe",
    "Overload",
    "QueuedCancel",
    "check_health_under_load",
    "check_overload",
    "check_queued_cancel",
    "health_while_generating",
    "kept_busy",
    "overload",
    "queued_cancel",
    "slots_of",
    "until_idle",
]

_NOTICE_S = 0.1
"""How long a client that gave up on a queued request is gone before the slots free: time for the engine to
notice a closed connection on loopback."""
_SETTLE_S = 0.25
"""After the slots are free, how long a waiting request has to take one (an engine hands it over at once)."""
_PROBE_CUT_S = 10.0
"""A health probe that has not answered by then is cut short: it failed its bound long before."""


@dataclass(frozen=True, slots=True)
class HealthProbe:
    seconds: float
    health: Health | None
    """None: the probe was cut short."""
    generating: int
    """How many of the generations were still streaming when it answered."""


async def slots_of(adapter: HttpAdapter, fallback: int = 2) -> int:
    """How many requests the engine generates at once (props' slot count), else `fallback`."""
    try:
        slots = (await adapter.props()).total_slots
    except WorkerError:
        slots = None
    return slots if isinstance(slots, int) and slots > 0 else fallback


async def until_idle(adapter: HttpAdapter, within_s: float = 15.0, poll_s: float = 0.05) -> bool:
    """Wait until the engine reports no busy slot (what a disconnected generation leaves busy a moment
    longer); True once idle, False if still busy after `within_s` or if the engine does not say."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        try:
            busy = (await adapter.props()).busy_slots
        except WorkerError:
            return False
        if busy is None:
            return False
        if busy == 0:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(poll_s)


async def health_while_generating(
    adapter: HttpAdapter, request: TaskRequest, streams: int, probes: int = 3, start_within_s: float = 60.0
) -> list[HealthProbe]:
    """Start `streams` copies of `request`, wait until each has streamed a token, ask health `probes` times,
    then disconnect them all."""
    started = [asyncio.Event() for _ in range(streams)]

    async def generate(first_token: asyncio.Event) -> None:
        copy = request.model_copy(update={"task_id": uuid.uuid4().hex})
        async with contextlib.aclosing(adapter.submit(copy)) as events:
            async for event in events:
                if isinstance(event, Token):
                    first_token.set()

    tasks = [asyncio.create_task(generate(event)) for event in started]
    try:
        async with asyncio.timeout(start_within_s):
            await asyncio.gather(*(event.wait() for event in started))
        results = []
        for _ in range(probes):
            begun = time.monotonic()
            try:
                health: Health | None = await asyncio.wait_for(adapter.health(), _PROBE_CUT_S)
            except TimeoutError:
                health = None
            results.append(HealthProbe(time.monotonic() - begun, health, sum(not t.done() for t in tasks)))
        return results
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await until_idle(adapter)  # leave the engine as found: the next check may count what it does


def kept_busy(probes: list[HealthProbe], streams: int) -> bool:
    """Whether every generation was still streaming at each probe: else the engine was not under load when
    asked (it finished them first), and there is nothing to judge."""
    return all(probe.generating >= streams for probe in probes)


def check_health_under_load(probes: list[HealthProbe], streams: int, within_s: float = 1.0) -> None:
    """Health answers, ready, within `within_s` while every slot is generating."""
    for probe in probes:
        if probe.health is None or probe.seconds > within_s:
            took = f"{probe.seconds:.2f} s" if probe.health is not None else f"no answer within {_PROBE_CUT_S:g} s"
            raise CheckFailure(
                "health is slow under load",
                f"health took {took} while {streams} slots were generating (limit {within_s:g} s): health must "
                "not wait behind generation, or a load balancer takes a busy engine for a dead one",
            )
        if not probe.health.ready:
            raise CheckFailure(
                "health says not ready while serving",
                f"health answered not ready ({probe.health.status}: {probe.health.detail[:80]}) while {streams} "
                "slots were generating: busy is not unready",
            )


REFUSALS = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED, ErrorKind.UPSTREAM_UNAVAILABLE})
"""How an engine may turn a request away under load: 429, 503, 529 — the kinds a client retries."""


@dataclass(frozen=True, slots=True)
class Overload:
    streams: list[StreamRecord]
    idle_after: bool | None
    """Whether every slot was idle afterwards (None: the engine does not say)."""
    health_after: Health | None


async def overload(adapter: HttpAdapter, request: TaskRequest, count: int) -> Overload:
    """`count` copies of `request` at once, each tried once (no retry: a refusal is what is looked at); then
    the engine's slots and health."""
    copies = [request.model_copy(update={"task_id": uuid.uuid4().hex}) for _ in range(count)]
    streams = list(await asyncio.gather(*(collect(adapter, copy) for copy in copies)))
    idle = await until_idle(adapter)
    props_say = idle or await _reports_slots(adapter)
    try:
        health: Health | None = await adapter.health()
    except WorkerError:
        health = None
    return Overload(streams, idle if props_say else None, health)


async def _reports_slots(adapter: HttpAdapter) -> bool:
    try:
        return (await adapter.props()).busy_slots is not None
    except WorkerError:
        return False


def check_overload(result: Overload) -> None:
    """Each request completed or was refused as retriable (429, 503, 529); none hung past its deadline; no 5xx
    otherwise; afterwards every slot is idle and health is ready."""
    for n, stream in enumerate(result.streams):
        error = stream.error
        if error is None or error.kind in REFUSALS:
            continue
        if error.kind in (ErrorKind.DEADLINE_UNMET, ErrorKind.DECODE_TIMEOUT):
            raise CheckFailure(
                "a request hung under load",
                f"request {n + 1} of {len(result.streams)} sent at once got nowhere: {error}; a busy engine must "
                "queue it and answer, or refuse it at once with 429 or 503",
            )
        raise CheckFailure(
            "overload answered as an error",
            f"request {n + 1} of {len(result.streams)} sent at once failed: {error}; a busy engine must queue "
            "it, or refuse it with 429 or 503 (with retry-after), never fail it",
        )
    if result.idle_after is False:
        raise CheckFailure(
            "slots stay busy after the load", "the engine still reports busy slots after every request ended"
        )
    if result.health_after is None or not result.health_after.ready:
        detail = result.health_after.detail[:80] if result.health_after else "no answer"
        raise CheckFailure("unhealthy after the load", f"health after the load: {detail}")


@dataclass(frozen=True, slots=True)
class QueuedCancel:
    busy_after: int
    """Slots seen taken by the cancelled queued request once every client had gone: those naming a task that is
    none of the fillers, where the engine names tasks, else the most seen busy once the engine had been idle."""
    watched_s: float
    prompt_tokens: float = 0
    """Prompt tokens the engine's counter says it evaluated after the slots were full: the given-up request's,
    if it took a slot anyway (engines with the metrics capability)."""
    attempt: int = 1
    """Which attempt this is (the first that saw the request run, else the last)."""
    attempts: int = 1

    @property
    def ran(self) -> bool:
        return self.prompt_tokens > 0 or self.busy_after > 0


async def queued_cancel(
    adapter: HttpAdapter,
    request: TaskRequest,
    slots: int,
    attempts: int = 3,
    queued_s: float = 0.5,
    watch_s: float = 2.0,
) -> QueuedCancel:
    """Fill every slot, send one more request and give up on it while it waits, free the slots, and watch
    whether a slot starts generating for the request that was given up on; up to `attempts` times, until one
    sees it. Whether a gone client is noticed before a slot frees is a race inside the engine (llama.cpp notices
    it only after a second without any result, so on time only where a decode step takes that long): one clean
    attempt proves little."""
    attempt, result = 1, await _queued_cancel_once(adapter, request, slots, queued_s, watch_s)
    while not result.ran and attempt < attempts:
        attempt, result = attempt + 1, await _queued_cancel_once(adapter, request, slots, queued_s, watch_s)
    return dataclasses.replace(result, attempt=attempt, attempts=attempts)


async def _queued_cancel_once(
    adapter: HttpAdapter, request: TaskRequest, slots: int, queued_s: float, watch_s: float
) -> QueuedCancel:
    started = [asyncio.Event() for _ in range(slots)]

    async def generate(first_token: asyncio.Event | None) -> None:
        copy = request.model_copy(update={"task_id": uuid.uuid4().hex})
        async with contextlib.aclosing(adapter.submit(copy)) as events:
            async for event in events:
                if first_token is not None and isinstance(event, Token):
                    first_token.set()

    await until_idle(adapter)  # from a quiet engine: what an earlier check left running is not this request
    fillers = [asyncio.create_task(generate(event)) for event in started]
    try:
        async with asyncio.timeout(60.0):
            await asyncio.gather(*(event.wait() for event in started))
        known = set((await adapter.props()).slot_tasks or ())  # every slot runs a filler now
        waiting = asyncio.create_task(generate(None))
        await _until_queued(adapter, queued_s)
        # Counted while it waits and every slot is busy: a prompt evaluated from here on is the waiting one's
        # (an engine with a free slot took it up at once, while it was wanted).
        counted = await _metric(adapter, "prompt_tokens")
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await asyncio.sleep(_NOTICE_S)
    finally:
        for task in fillers:
            task.cancel()
        await asyncio.gather(*fillers, return_exceptions=True)
    if known:
        # The engine names its tasks, and a slot keeps naming the last it ran: a task on any slot that is none of
        # the fillers is the request given up on, however briefly it held the slot, so this witness misses
        # nothing a poll could. A freed slot goes to a waiting request at once: once the fillers' slots are free,
        # a moment more settles it. Whether the fillers stop at once (cancel.engine_side) does not matter here.
        await until_idle(adapter, within_s=watch_s)
        await asyncio.sleep(_SETTLE_S)
        strangers = set((await adapter.props()).slot_tasks or ()) - known
        return QueuedCancel(len(strangers), watch_s, await _prompt_rise(adapter, counted))
    # The fillers stop at once (cancel.engine_side checks that); a queued request that starts instead keeps a
    # slot busy past this, where watching finds it.
    await until_idle(adapter, within_s=2.0)
    busy = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + watch_s
    while loop.time() < until:
        busy = max(busy, (await adapter.props()).busy_slots or 0)
        await asyncio.sleep(0.05)
    return QueuedCancel(busy, watch_s, await _prompt_rise(adapter, counted))


async def _until_queued(adapter: HttpAdapter, queued_s: float, within_s: float = 10.0) -> None:
    """Until the engine holds the request in its queue: by its gauge of waiting requests, where it has one, so
    the client leaves once the request surely waits, not after a guess; else for `queued_s`."""
    loop = asyncio.get_running_loop()
    until = loop.time() + within_s
    while loop.time() < until:
        waiting = await _metric(adapter, "queued_requests")
        if waiting is None:
            await asyncio.sleep(queued_s)
            return
        if waiting > 0:
            return
        await asyncio.sleep(0.02)


async def _metric(adapter: HttpAdapter, name: str) -> float | None:
    """One of the engine's metrics, where it has the metrics capability and exposes that one (else None)."""
    if Capability.METRICS not in adapter.capabilities:
        return None
    try:
        return (await adapter.metrics()).get(name)
    except WorkerError:
        return None


async def _prompt_rise(adapter: HttpAdapter, before: float | None) -> float:
    """How far the prompt-token counter rose since `before`: a monotonic witness, which no poll can miss, of a
    prompt evaluated meanwhile."""
    after = await _metric(adapter, "prompt_tokens") if before is not None else None
    return 0 if before is None or after is None else after - before


def check_queued_cancel(result: QueuedCancel) -> None:
    """A request given up on while it waited for a slot never starts generating. Either witness fails it: which
    one sees it depends on how far the engine got before it dropped the request, so the detail states the
    deviation first and the evidence after."""
    evidence = []
    if result.prompt_tokens > 0:
        evidence.append(f"the engine's counter of evaluated prompt tokens rose by {result.prompt_tokens:g}")
    if result.busy_after:
        evidence.append(f"{result.busy_after} slot took it within {result.watched_s:g} s")
    if evidence:
        seen = f" (in attempt {result.attempt} of {result.attempts})" if result.attempts > 1 else ""
        raise CheckFailure(
            "a cancelled queued request ran",
            "a request whose client left while it waited for a slot took one once slots were free ("
            + "; ".join(evidence)
            + f" after every client had gone){seen}: the engine must drop a queued request whose client is gone",
        )
