"""What an engine does while every slot is generating (``health.under_load``): generations are started and
kept running while the engine is asked about itself; the check reads what came back and how fast."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

from conform.adapters import Health, HttpAdapter, TaskRequest, Token, WorkerError

from .checks import CheckFailure

__all__ = ["HealthProbe", "check_health_under_load", "health_while_generating", "slots_of", "until_idle"]

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


def check_health_under_load(probes: list[HealthProbe], streams: int, within_s: float = 1.0) -> None:
    """Health answers, ready, within `within_s` while every slot is generating."""
    for probe in probes:
        if probe.generating < streams:
            raise CheckFailure(
                "the slots were not kept busy",
                f"only {probe.generating} of {streams} generations were still streaming when health answered: "
                "the check could not load the engine (give it a longer budget)",
            )
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
