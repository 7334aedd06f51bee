"""What every adapter's streams share: the send time that TTFT counts from is exact; a cancel holds within a read."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from adapters import ENGINE_NAMES, AdapterOptions, ErrorKind, TaskRequest, create_adapter
from harness.stream import collect
from stubs import StubServer


class DelayedTransport(httpx.AsyncBaseTransport):
    """The real transport, entered late: a slow pool or connect, before the request reaches the connection."""

    def __init__(self, delay_s: float) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.delay_s = delay_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.delay_s)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_time_to_first_token_counts_from_when_the_request_was_written() -> None:
    """Time spent before the request reaches the connection (pool, connect, a client's backlog) is not latency."""
    async with StubServer("llamacpp") as stub:
        adapter = create_adapter("llamacpp", stub.url, AdapterOptions(transport=DelayedTransport(0.3)))
        try:
            asked = time.monotonic()
            record = await collect(adapter, TaskRequest(prompt="how fast", max_tokens=2))
        finally:
            await adapter.aclose()
    assert record.error is None, record.error
    assert record.sent_at - asked >= 0.3
    assert record.tokens[0].at - record.sent_at < 0.3


class OneReadTransport(httpx.AsyncBaseTransport):
    """The real transport, but each response body arrives in one read: every frame of a stream at once."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("engine", ENGINE_NAMES)
async def test_after_a_cancel_no_token_of_the_same_read_is_delivered(engine: str) -> None:
    """The read's later tokens arrived before the cancel; handing them over after it would break its contract."""
    async with StubServer(engine) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(transport=OneReadTransport()))
        try:
            record = await collect(adapter, TaskRequest(prompt="all at once", max_tokens=20), cancel_after=1)
        finally:
            await adapter.aclose()
    assert len(record.tokens) == 1
    assert record.tokens_after_cancel == 0
    assert record.error is not None and record.error.kind is ErrorKind.CANCELLED
