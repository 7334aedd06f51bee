"""What every adapter's streams share: the send time that TTFT counts from is exact; a cancel holds within a read."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from adapters import ENGINE_NAMES, AdapterOptions, ErrorKind, TaskRequest, Transcript, create_adapter
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


_WIRE_FRAME_START = {"anthropic": "event: ", "ollama": "{"}
"""How a frame starts in a transcript, where not with ``data: `` (an SSE event with a name carries it; an
NDJSON line is the JSON itself)."""


@pytest.mark.parametrize("engine", ENGINE_NAMES)
async def test_a_transcript_keeps_every_frame_once_as_it_came(engine: str) -> None:
    """Whatever the adapter reads of a frame, the transcript has the whole frame, in its wire form, once:
    as many frames as the same request, sent again to the same (seeded) stub, gets on the wire."""
    transcript = Transcript()
    async with StubServer(engine) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(transcript=transcript))
        try:
            record = await collect(adapter, TaskRequest(prompt="keep a record", max_tokens=3))
            headers = dict(adapter.auth_headers(None))  # what an API asks of every request (anthropic-version)
        finally:
            await adapter.aclose()
        entries = [json.loads(line) for line in transcript.to_ndjson().splitlines()]
        sent = [entry for entry in entries if entry["kind"] == "request"][-1]
        async with httpx.AsyncClient() as client:
            wire = (await client.post(sent["url"], json=sent["body"], headers=headers)).text
    assert record.error is None, record.error
    frames = [entry["data"] for entry in entries if entry["kind"] == "frame"]
    on_the_wire = wire.count("\n") if engine == "ollama" else wire.count("\n\n")
    assert len(frames) == on_the_wire
    start = _WIRE_FRAME_START.get(engine, "data: ")
    assert all(frame.startswith(start) for frame in frames), frames
    if engine == "anthropic":
        assert [f.split("\n")[0] for f in frames[:2]] == ["event: message_start", "event: content_block_start"]
    assert all(token.text in "".join(frames) for token in record.tokens)
