"""What every adapter's streams share: the send time that TTFT counts from is exact; a cancel holds within a read."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from conform.adapters import (
    AdapterOptions,
    ErrorKind,
    ProxyConfig,
    TaskRequest,
    Transcript,
    create_adapter,
    engine_names,
)
from conform.adapters._http import HttpClient
from conform.harness.stream import collect
from conform.stubs import Script, StubServer
from tests.helpers import forward_proxy


async def test_time_to_first_token_counts_from_when_the_request_was_written() -> None:
    """Time spent before the request reaches the connection (here: waiting for the pool's one connection)
    is not latency."""
    async with StubServer("llamacpp", Script(token_delay_ms=5)) as stub:
        client = HttpClient(stub.url, max_connections=1)
        body = {"prompt": "how fast", "n_predict": 2, "stream": True}
        long_body = {**body, "n_predict": 10_000}  # still streaming, its connection taken, for 50 s

        async def second() -> tuple[float, float]:
            async with client.open_stream("POST", "/completion", json_body=body) as stream:
                async for _ in stream.chunks():
                    return stream.sent_at, stream.arrived_at()
            raise AssertionError("the second stream sent nothing")

        try:
            async with client.open_stream("POST", "/completion", json_body=long_body):
                asked = time.monotonic()
                waiting = asyncio.create_task(second())
                await asyncio.sleep(0.3)  # the one connection stays taken meanwhile
            sent_at, first_at = await waiting
        finally:
            await client.aclose()
    assert sent_at - asked >= 0.3
    assert first_at >= sent_at


@pytest.mark.parametrize("engine", engine_names())
async def test_after_a_cancel_no_token_of_the_same_read_is_delivered(engine: str) -> None:
    """The read's later tokens arrived before the cancel; handing them over after it would break its contract.
    A buffering proxy hands the whole stream over in one write, so one read takes every frame."""
    async with forward_proxy(buffered=True) as proxy, StubServer(engine) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(proxy=ProxyConfig.everywhere(proxy.url)))
        try:
            record = await collect(adapter, TaskRequest(prompt="all at once", max_tokens=20), cancel_after=1)
        finally:
            await adapter.aclose()
    assert proxy.seen, "the stream went through the buffering proxy"
    assert len(record.tokens) == 1
    assert record.tokens_after_cancel == 0
    assert record.error is not None and record.error.kind is ErrorKind.CANCELLED


_WIRE_FRAME_START = {"anthropic": "event: ", "responses": "event: ", "ollama": "{"}
"""How a frame starts in a transcript, where not with ``data: `` (an SSE event with a name carries it; an
NDJSON line is the JSON itself)."""


@pytest.mark.parametrize("engine", engine_names())
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
        async with (
            aiohttp.ClientSession() as session,
            session.post(sent["url"], json=sent["body"], headers=headers) as answer,
        ):
            wire = await answer.text()
    assert record.error is None, record.error
    frames = [entry["data"] for entry in entries if entry["kind"] == "frame"]
    on_the_wire = wire.count("\n") if engine == "ollama" else wire.count("\n\n")
    assert len(frames) == on_the_wire
    start = _WIRE_FRAME_START.get(engine, "data: ")
    assert all(frame.startswith(start) for frame in frames), frames
    if engine == "anthropic":
        assert [f.split("\n")[0] for f in frames[:2]] == ["event: message_start", "event: content_block_start"]
    assert all(token.text in "".join(frames) for token in record.tokens)
