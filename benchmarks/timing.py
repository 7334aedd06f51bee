"""Timing accuracy: the TTFT and inter-token latency the harness reports vs what the stub was scripted to do.

The target is measured at 50 concurrent streams in steady state: 50 clients,
each sending its next request as soon as its previous stream ends (a closed
loop, as load generators run). The clients start spread evenly over one
stream's duration, so that requests keep arriving one at a time, each while
49 other streams run. The first round ramps up and opens the connections; it
is not measured.

A burst (all 50 requests sent in the same instant, on new connections) is
reported beside it, without a target: there the stub and the client each set
up 50 requests on one event loop before the first tokens are due, and the
figure says how much such a burst delays first tokens, in both processes.
"""

from __future__ import annotations

import asyncio

from adapters import LlamaCppAdapter, TaskRequest
from harness.stream import StreamRecord, collect
from harness.timing import exempt_startup_objects, percentile, stream_timing

from ._processes import serve
from ._table import Row

__all__ = ["run"]

DELAY_S = 0.010
"""The stub waits this long before every token, the first included."""


async def _client(
    adapter: LlamaCppAdapter, number: int, stagger_s: float, rounds: int, tokens: int
) -> list[StreamRecord]:
    """One client of the closed loop: `rounds` requests, one after another; all but the first are measured."""
    await asyncio.sleep(number * stagger_s)
    measured = []
    for round_ in range(rounds):
        request = TaskRequest(prompt=f"timing {number}/{round_}", max_tokens=tokens, seed=number)
        record = await collect(adapter, request)
        if round_ > 0:
            measured.append(record)
    return measured


async def _steady(url: str, streams: int, rounds: int, tokens: int) -> list[StreamRecord]:
    adapter = LlamaCppAdapter(url)
    try:
        await collect(adapter, TaskRequest(prompt="warm-up", max_tokens=2))  # lazy imports
        stagger_s = tokens * DELAY_S / streams
        clients = await asyncio.gather(*(_client(adapter, n, stagger_s, rounds, tokens) for n in range(streams)))
    finally:
        await adapter.aclose()
    return [record for records in clients for record in records]


async def _burst(url: str, streams: int, tokens: int) -> list[StreamRecord]:
    adapter = LlamaCppAdapter(url)
    try:
        await collect(adapter, TaskRequest(prompt="warm-up", max_tokens=2))
        requests = [TaskRequest(prompt=f"burst {n}", max_tokens=tokens, seed=n) for n in range(streams)]
        return list(await asyncio.gather(*(collect(adapter, r) for r in requests)))
    finally:
        await adapter.aclose()


def _errors(records: list[StreamRecord]) -> tuple[list[float], list[float]]:
    """Sorted absolute errors, in seconds, of every first token and every inter-token gap."""
    ttft_errors, itl_errors = [], []
    for record in records:
        assert record.error is None, record.error
        timing = stream_timing(record.sent_at, [t.at for t in record.tokens])
        assert timing is not None
        ttft_errors.append(abs(timing.ttft_s - DELAY_S))
        itl_errors.extend(abs(gap - DELAY_S) for gap in timing.itl_s)
    return sorted(ttft_errors), sorted(itl_errors)


def _ms(errors: list[float], fraction: float) -> float:
    return percentile(errors, fraction) * 1000


def run(quick: bool = False) -> list[Row]:
    streams, rounds, tokens = (5, 2, 10) if quick else (50, 4, 50)
    exempt_startup_objects()  # as conform run and conform determinism do before they measure
    with serve("stub", {"token_delay_ms": DELAY_S * 1000}) as (url, _):
        ttft, itl = _errors(asyncio.run(_steady(url, streams, rounds, tokens)))
    with serve("stub", {"token_delay_ms": DELAY_S * 1000}) as (url, _):
        burst_ttft, _ = _errors(asyncio.run(_burst(url, streams, tokens)))
    note = (
        f"{streams} concurrent streams in a closed loop, {len(ttft)} measured requests of {tokens} tokens, "
        f"stub scripted at {DELAY_S * 1000:g} ms per token"
    )
    rows = []
    for name, errors in (("ITL", itl), ("TTFT", ttft)):
        median, p99 = _ms(errors, 0.5), _ms(errors, 0.99)
        rows.append(
            Row(f"{name} error, median", median, "ms", "< 1 ms", median < 1.0, note=note if name == "ITL" else "")
        )
        rows.append(Row(f"{name} error, p99", p99, "ms", "< 5 ms", p99 < 5.0))
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
