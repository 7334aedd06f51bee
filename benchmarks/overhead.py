"""Harness overhead: tokens/s through adapter + checks vs raw httpx reading the very same stream."""

from __future__ import annotations

import asyncio
import time

import httpx

from adapters import LlamaCppAdapter, TaskRequest
from harness.checks import run_checks
from harness.stream import collect

from ._processes import FrameCounter, serve
from ._table import Row

__all__ = ["run"]


async def _raw(url: str, tokens: int) -> float:
    body = {"prompt": "overhead", "n_predict": tokens, "stream": True, "seed": 1}
    async with httpx.AsyncClient(timeout=120) as client:
        start = time.perf_counter()
        counter = FrameCounter()
        async with client.stream("POST", url + "/completion", json=body) as response:
            async for chunk in response.aiter_bytes():
                counter.feed(chunk)
        elapsed = time.perf_counter() - start
    assert counter.frames - 1 == tokens, f"{counter.frames - 1} tokens received, {tokens} asked"
    return tokens / elapsed


async def _full_path(url: str, tokens: int) -> float:
    adapter = LlamaCppAdapter(url)
    try:
        start = time.perf_counter()
        record = await collect(adapter, TaskRequest(prompt="overhead", max_tokens=tokens, seed=1))
        run_checks(record, "stream.completed", "stream.grammar", "stream.indices", "stream.usage", "stream.token_ids")
        elapsed = time.perf_counter() - start
    finally:
        await adapter.aclose()
    assert len(record.tokens) == tokens
    return tokens / elapsed


def run(quick: bool = False) -> list[Row]:
    tokens, rounds = (1_000, 1) if quick else (50_000, 3)
    with serve("stub") as (url, _):
        raw = max(asyncio.run(_raw(url, tokens)) for _ in range(rounds))
        ours = max(asyncio.run(_full_path(url, tokens)) for _ in range(rounds))
    return [
        Row(
            "harness path (adapter + checks)",
            ours,
            "tokens/s",
            ">= 0.8x raw httpx",
            ours >= 0.8 * raw,
            raw,
            "raw httpx bytes",
            f"one stream of {tokens} tokens from the stub, best of {rounds}",
        )
    ]
