"""What every adapter's streams share: a finished stream gives its connection back, and the send time is exact."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from adapters import ENGINE_NAMES, AdapterOptions, TaskRequest, create_adapter
from harness.stream import collect
from stubs import StubServer


class ConnectionCounter(httpx.AsyncBaseTransport):
    """The real transport, counting the distinct connections its responses came over."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.delay_s = delay_s
        self.streams: list[object] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.delay_s)  # a slow pool or connect: before the request reaches the connection
        response = await self.inner.handle_async_request(request)
        self.streams.append(response.extensions["network_stream"])  # held, so that ids stay unique
        return response

    @property
    def connections(self) -> int:
        return len({id(stream) for stream in self.streams})

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("engine", ENGINE_NAMES)
async def test_streams_that_ended_reuse_one_connection(engine: str) -> None:
    counter = ConnectionCounter()
    async with StubServer(engine) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(transport=counter, model="stub-model"))
        try:
            for n in range(3):
                record = await collect(adapter, TaskRequest(prompt=f"reuse {n}", max_tokens=4, seed=n))
                assert record.error is None, record.error
        finally:
            await adapter.aclose()
    streamed = [s for s in counter.streams if s is not None]
    assert len(streamed) >= 3, "every request went through the counting transport"
    assert counter.connections == 1, f"{counter.connections} connections for {len(streamed)} requests"


async def test_a_cancelled_stream_does_not_hand_back_its_connection() -> None:
    counter = ConnectionCounter()
    async with StubServer("llamacpp") as stub:
        adapter = create_adapter("llamacpp", stub.url, AdapterOptions(transport=counter))
        try:
            await collect(adapter, TaskRequest(prompt="cancel me", max_tokens=5_000), cancel_after=2)
            record = await collect(adapter, TaskRequest(prompt="next", max_tokens=4))
        finally:
            await adapter.aclose()
    assert record.error is None, record.error
    assert counter.connections == 2, "the cancelled stream's connection closed; a new one served the next request"


async def test_time_to_first_token_counts_from_when_the_request_was_written() -> None:
    """Time spent before the request reaches the connection (pool, connect, a client's backlog) is not latency."""
    counter = ConnectionCounter(delay_s=0.3)
    async with StubServer("llamacpp") as stub:
        adapter = create_adapter("llamacpp", stub.url, AdapterOptions(transport=counter))
        try:
            asked = time.monotonic()
            record = await collect(adapter, TaskRequest(prompt="how fast", max_tokens=2))
        finally:
            await adapter.aclose()
    assert record.error is None, record.error
    assert record.sent_at - asked >= 0.3
    assert record.tokens[0].at - record.sent_at < 0.3
