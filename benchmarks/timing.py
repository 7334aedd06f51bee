"""Timing accuracy: the TTFT and inter-token latency the harness reports vs what the stub was scripted to do.

The target is measured at 50 concurrent streams in steady state: 50 clients,
each sending its next request as soon as its previous stream ends (a closed
loop, as load generators run). The clients start spread evenly over one
stream's duration, so that requests keep arriving one at a time, each while
49 other streams run. The first round ramps up and opens the connections; it
is not measured.

The alternative, measured the same way in the same run, is what a user would
write by hand: raw httpx, a stamp before sending and one at each chunk. Its
error is mostly the time a process takes to wake up and read what arrived; the
harness takes its tokens' times from the kernel's receive stamps instead. What
remains is the stub's: its scheduling, on a loop whose timers are exact.

A burst (all 50 requests sent in the same instant, on new connections) is
reported beside it, without a target: there the stub and the client each set
up 50 requests on one event loop before the first tokens are due, and the
figure says how much such a burst delays first tokens, in both processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from adapters import LlamaCppAdapter, TaskRequest
from harness.stream import StreamRecord, collect
from harness.timing import exempt_startup_objects, percentile, stream_timing

from ._machine import CpuTicks, steal_between
from ._processes import FrameCounter, serve
from ._table import Row

__all__ = ["run"]

DELAY_S = 0.010
"""The stub waits this long before every token, the first included."""

SCRIPT = {"token_delay_ms": DELAY_S * 1000}
"""The stub's script in every measurement."""


Timed = tuple[float, list[float]]
"""When a request was sent, and when each of its tokens arrived (monotonic seconds)."""

StreamOnce = Callable[[str, int], Awaitable[Timed]]
"""Stream one request (prompt, max tokens) and time it."""


async def _client(stream: StreamOnce, number: int, stagger_s: float, rounds: int, tokens: int) -> list[Timed]:
    """One client of the closed loop: `rounds` requests, one after another; all but the first are measured."""
    await asyncio.sleep(number * stagger_s)
    measured = []
    for round_ in range(rounds):
        timed = await stream(f"timing {number}/{round_}", tokens)
        if round_ > 0:
            measured.append(timed)
    return measured


async def _closed_loop(stream: StreamOnce, streams: int, rounds: int, tokens: int) -> list[Timed]:
    await stream("warm-up", 2)  # lazy imports
    stagger_s = tokens * DELAY_S / streams
    clients = await asyncio.gather(*(_client(stream, n, stagger_s, rounds, tokens) for n in range(streams)))
    return [timed for measured in clients for timed in measured]


async def _ours(url: str, streams: int, rounds: int, tokens: int) -> list[Timed]:
    adapter = LlamaCppAdapter(url)

    async def stream(prompt: str, max_tokens: int) -> Timed:
        record = await collect(adapter, TaskRequest(prompt=prompt, max_tokens=max_tokens, seed=1))
        assert record.error is None, record.error
        return record.sent_at, [t.at for t in record.tokens]

    try:
        return await _closed_loop(stream, streams, rounds, tokens)
    finally:
        await adapter.aclose()


async def _raw_httpx(url: str, streams: int, rounds: int, tokens: int) -> list[Timed]:
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def stream(prompt: str, max_tokens: int) -> Timed:
            body = {"prompt": prompt, "n_predict": max_tokens, "stream": True, "seed": 1}
            counter, times = FrameCounter(), []
            sent = time.monotonic()
            async with client.stream("POST", url + "/completion", json=body) as response:
                async for chunk in response.aiter_raw():
                    at, before = time.monotonic(), counter.frames
                    counter.feed(chunk)
                    times += [at] * (counter.frames - before)
            assert len(times) == max_tokens + 1, f"{len(times) - 1} tokens, {max_tokens} asked"
            return sent, times[:-1]  # the last frame is llama.cpp's final one, not a token

        return await _closed_loop(stream, streams, rounds, tokens)


async def _burst(url: str, streams: int, tokens: int) -> list[Timed]:
    adapter = LlamaCppAdapter(url)
    try:
        await collect(adapter, TaskRequest(prompt="warm-up", max_tokens=2))
        requests = [TaskRequest(prompt=f"burst {n}", max_tokens=tokens, seed=n) for n in range(streams)]
        records: list[StreamRecord] = await asyncio.gather(*(collect(adapter, r) for r in requests))
    finally:
        await adapter.aclose()
    assert all(r.error is None for r in records)
    return [(r.sent_at, [t.at for t in r.tokens]) for r in records]


def _errors(streams: list[Timed]) -> tuple[list[float], list[float]]:
    """Sorted absolute errors, in seconds, of every first token and every inter-token gap."""
    ttft_errors: list[float] = []
    itl_errors: list[float] = []
    for sent, token_times in streams:
        timing = stream_timing(sent, token_times)
        assert timing is not None
        ttft_errors.append(abs(timing.ttft_s - DELAY_S))
        itl_errors.extend(abs(gap - DELAY_S) for gap in timing.itl_s)
    return sorted(ttft_errors), sorted(itl_errors)


def _ms(errors: list[float], fraction: float) -> float:
    return percentile(errors, fraction) * 1000


RUNS = 3
"""Closed loops measured, each side on a fresh stub; each side's quietest one (lowest TTFT median) is shown."""


@dataclass(frozen=True, slots=True)
class _Run:
    ttft: list[float]
    itl: list[float]
    steal: str

    @property
    def ttft_median(self) -> float:
        return percentile(self.ttft, 0.5)


def _measured(side: Callable[[str, int, int, int], Awaitable[list[Timed]]], sizes: tuple[int, int, int]) -> _Run:
    before = CpuTicks.now()
    with serve("stub", SCRIPT) as (url, _):
        ttft, itl = _errors(asyncio.run(side(url, *sizes)))
    return _Run(ttft, itl, steal_between(before, CpuTicks.now()))


def _quietest(runs: list[_Run]) -> tuple[_Run, str]:
    """The run with the lowest TTFT median, and a note of every run's (this VM's neighbours come and go)."""
    best = min(runs, key=lambda r: r.ttft_median)
    each = ", ".join(f"{r.ttft_median * 1000:.2f} ms" + (f" ({r.steal})" if r.steal else "") for r in runs)
    return best, each


def run(quick: bool = False) -> list[Row]:
    streams, _, tokens = sizes = (5, 2, 10) if quick else (50, 4, 50)
    exempt_startup_objects()  # as conform run and conform determinism do before they measure
    ours_runs: list[_Run] = []
    raw_runs: list[_Run] = []
    for _ in range(1 if quick else RUNS):  # alternated, so that both sides see the same spells of noise
        ours_runs.append(_measured(_ours, sizes))
        raw_runs.append(_measured(_raw_httpx, sizes))
    (ours, ours_each), (raw, raw_each) = _quietest(ours_runs), _quietest(raw_runs)
    with serve("stub", SCRIPT) as (url, _):
        burst_ttft, _ = _errors(asyncio.run(_burst(url, streams, tokens)))
    note = (
        f"{streams} concurrent streams in a closed loop, {len(ours.ttft)} measured requests of {tokens} tokens, "
        f"stub scripted at {DELAY_S * 1000:g} ms per token; the quietest of {len(ours_runs)} runs per side"
    )
    spread = f"TTFT medians of the runs: ours {ours_each}; raw httpx {raw_each}"
    notes = {("ITL", "median"): note, ("TTFT", "median"): spread}
    rows = []
    for name, errors, theirs in (("ITL", ours.itl, raw.itl), ("TTFT", ours.ttft, raw.ttft)):
        for label, fraction, bound in (("median", 0.5, 1.0), ("p99", 0.99, 5.0)):
            figure = _ms(errors, fraction)
            rows.append(
                Row(
                    f"{name} error, {label}",
                    figure,
                    "ms",
                    f"< {bound:g} ms",
                    figure < bound,
                    _ms(theirs, fraction),
                    "raw httpx, stamped by hand",
                    notes.get((name, label), ""),
                )
            )
    rows.append(
        Row(
            f"TTFT error, {streams} sent at once",
            _ms(burst_ttft, 0.5),
            "ms",
            "",
            None,
            note=f"median; p99 {_ms(burst_ttft, 0.99):.1f} ms. All requests in one instant, on new connections: "
            f"stub and client each set up {streams} requests on one event loop while the first tokens fall due",
        )
    )
    return rows
