"""Stub engine throughput: tokens/s one stub process streams to an httpx client, and 1,000 streams at once."""

from __future__ import annotations

import asyncio
import time

import httpx

from ._processes import FrameCounter, peak_rss_mib, serve
from ._table import Row

__all__ = ["run"]


async def _stream(client: httpx.AsyncClient, url: str, tokens: int) -> int:
    body = {"prompt": "benchmark", "n_predict": tokens, "stream": True}
    counter = FrameCounter()
    async with client.stream("POST", url + "/completion", json=body) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            counter.feed(chunk)
    return counter.frames - 1  # the final frame is not a token


async def _throughput(url: str, streams: int, tokens: int) -> tuple[float, int]:
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(_stream(client, url, tokens) for _ in range(streams)), return_exceptions=True)
        elapsed = time.perf_counter() - start
    errors = sum(1 for r in results if isinstance(r, BaseException))
    received = sum(r for r in results if isinstance(r, int))
    return received / elapsed, errors


def run(quick: bool = False) -> list[Row]:
    streams, tokens = (2, 500) if quick else (8, 25_000)
    with serve("stub") as (url, _):
        ours, _ = asyncio.run(_throughput(url, streams, tokens))
    with serve("plain") as (url, _):
        reference, _ = asyncio.run(_throughput(url, streams, tokens))
    many, per_stream = (20, 20) if quick else (1000, 50)
    with serve("stub") as (url, pid):
        _, errors = asyncio.run(_throughput(url, many, per_stream))
        rss = peak_rss_mib(pid)
    return [
        Row(
            "stub throughput (zero delay)",
            ours,
            "tokens/s",
            ">= 100,000 tokens/s",
            ours >= 100_000,
            reference,
            "plain aiohttp SSE server",
            f"{streams} streams of {tokens} tokens; reference = ceiling",
        ),
        Row(
            f"stub with {many} concurrent streams",
            float(errors),
            "errors",
            "0 errors",
            errors == 0,
            note=f"{many} streams x {per_stream} tokens; stub peak RSS {rss:.0f} MiB",
        ),
        Row("stub peak RSS at that load", rss, "MiB", "bounded (< 512 MiB)", rss < 512),
    ]
