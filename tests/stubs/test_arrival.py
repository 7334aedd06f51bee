"""A generation's schedule counts from its request's first bytes: the stub's server stamps them."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

import pytest

from conform.stubs import StubServer
from conform.stubs.kernel_stamps import KERNEL_STAMPS


async def open_connection(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


def completion_request() -> tuple[bytes, bytes]:
    """(head, body) of a non-streamed llama.cpp completion on a keep-alive connection."""
    body = json.dumps({"prompt": "hello", "n_predict": 2}).encode()
    head = (
        f"POST /completion HTTP/1.1\r\nHost: stub\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    return head + await reader.readexactly(length)


async def test_a_generation_after_another_request_on_the_connection_counts_from_its_own_bytes() -> None:
    async with StubServer("llamacpp") as stub:
        reader, writer = await open_connection(stub.url)
        loop = asyncio.get_running_loop()
        writer.write(b"GET /health HTTP/1.1\r\nHost: stub\r\n\r\n")
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.1)
        head, body = completion_request()
        sent_at = loop.time()
        writer.write(head + body)
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
    (generation,) = stub.state.generations
    assert sent_at <= generation.started_at < sent_at + 0.05, "the health check's arrival was taken for it"


async def test_body_bytes_that_come_later_do_not_restart_the_clock() -> None:
    async with StubServer("llamacpp") as stub:
        reader, writer = await open_connection(stub.url)
        loop = asyncio.get_running_loop()
        head, body = completion_request()
        sent_at = loop.time()
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(body)
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200")
        # The next request on the connection gets a stamp of its own again.
        await asyncio.sleep(0.1)
        second_at = loop.time()
        writer.write(head + body)
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
    first, second = stub.state.generations
    assert sent_at <= first.started_at < sent_at + 0.05
    assert second_at <= second.started_at < second_at + 0.05


@pytest.mark.skipif(not KERNEL_STAMPS, reason="kernel receive stamps are Linux's (SO_TIMESTAMPNS)")
async def test_a_request_counts_from_when_it_reached_the_machine_not_from_when_the_stub_read_it() -> None:
    async with StubServer("llamacpp") as stub:
        reader, writer = await open_connection(stub.url)
        head, body = completion_request()
        writer.write(head + body)  # sent at once: nothing is queued on the connection
        sent = time.monotonic()
        time.sleep(0.1)  # noqa: ASYNC251  # the stub's loop (this one) is busy while the request arrives
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200")
        writer.close()
    (generation,) = stub.state.generations
    assert sent - 0.01 < generation.started_at < sent + 0.05, generation.started_at - sent
