"""Timing accuracy: the TTFT and inter-token latency the harness reports vs what the stub was scripted to do."""

from __future__ import annotations

import asyncio

from adapters import LlamaCppAdapter, TaskRequest
from harness.stream import collect
from harness.timing import percentile, stream_timing

from ._processes import serve
from ._table import Row

__all__ = ["run"]

DELAY_S = 0.010
"""The stub waits this long before every token, the first included."""


async def _errors(url: str, streams: int, tokens: int) -> tuple[list[float], list[float]]:
    adapter = LlamaCppAdapter(url)
    try:
        # Warm up first: the first request of a process pays for lazy imports and a fresh connection.
        await collect(adapter, TaskRequest(prompt="warm-up", max_tokens=2))
        requests = [TaskRequest(prompt=f"timing {n}", max_tokens=tokens, seed=n) for n in range(streams)]
        records = await asyncio.gather(*(collect(adapter, r) for r in requests))
    finally:
        await adapter.aclose()
    ttft_errors, itl_errors = [], []
    for record in records:
        assert record.error is None, record.error
        timing = stream_timing(record.sent_at, [t.at for t in record.tokens])
        assert timing is not None
        ttft_errors.append(abs(timing.ttft_s - DELAY_S))
        itl_errors.extend(abs(gap - DELAY_S) for gap in timing.itl_s)
    return sorted(ttft_errors), sorted(itl_errors)


def run(quick: bool = False) -> list[Row]:
    streams, tokens = (5, 10) if quick else (50, 100)
    with serve("stub", {"token_delay_ms": DELAY_S * 1000}) as (url, _):
        ttft, itl = asyncio.run(_errors(url, streams, tokens))
    note = f"{streams} concurrent streams, stub scripted at {DELAY_S * 1000:g} ms per token"
    rows = []
    for name, errors in (("ITL", itl), ("TTFT", ttft)):
        median, p99 = percentile(errors, 0.5) * 1000, percentile(errors, 0.99) * 1000
        rows.append(
            Row(f"{name} error, median", median, "ms", "< 1 ms", median < 1.0, note=note if name == "ITL" else "")
        )
        rows.append(Row(f"{name} error, p99", p99, "ms", "< 5 ms", p99 < 5.0))
    return rows
