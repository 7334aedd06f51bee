"""Streams on connections of their own (`_own_connection`), seen from the wire: what is sent, what is read."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl

import pytest

from adapters import ErrorKind, RetryPolicy, WorkerError
from adapters._http import HttpClient
from adapters._network import AsyncioBackend
from adapters._own_connection import OwnConnections
from tests.helpers import answering, raw_server, read_request

SECRET = "sk-own-connection-secret"


async def stream_body(url: str, path: str = "/v1/stream", **kwargs: object) -> bytes:
    """The body of one streamed POST, as `chunks()` gives it."""
    client = HttpClient(url, retry=RetryPolicy.none(), **kwargs)  # type: ignore[arg-type]
    try:
        async with client.open_stream("POST", path, json_body={"prompt": "é", "n": 1}) as stream:
            return b"".join([chunk async for chunk in stream.chunks()])
    finally:
        await client.aclose()


async def test_the_request_on_the_wire_is_whole_and_says_what_it_carries() -> None:
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        length = int(next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")).split(b":")[1])
        seen.append(head + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 2\r\n\r\nok")
        writer.close()

    async with raw_server(serve) as url:
        body = await stream_body(url + "/base/", "/v1/a b", auth_headers={"Authorization": f"Bearer {SECRET}"})
    assert body == b"ok"
    head, _, sent = seen[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /base/v1/a%20b HTTP/1.1", "the base URL's path, then the path, quoted as httpx quotes"
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Host"] == url.removeprefix("http://")
    assert fields["Accept-Encoding"] == "identity", "an encoder would hold tokens back"
    assert fields["User-Agent"].startswith("conform")
    assert fields["Authorization"] == f"Bearer {SECRET}"
    assert fields["Content-Type"] == "application/json"
    assert json.loads(sent) == {"prompt": "é", "n": 1}


async def test_each_stream_has_a_connection_of_its_own_which_closes_with_it() -> None:
    closed: list[bool] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.readexactly(2)  # the body, {}
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        closed.append(await reader.read() == b"")  # the client's FIN, and nothing more on this connection
        writer.close()

    async with raw_server(serve) as url:
        client = HttpClient(url, retry=RetryPolicy.none())
        try:
            for _ in range(2):
                async with client.open_stream("POST", "/s", json_body={}) as stream:
                    assert [chunk async for chunk in stream.chunks()] == [b"ok"]
            for _ in range(50):
                if len(closed) == 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            await client.aclose()
    assert closed == [True, True], "two streams, two connections, each closed after its stream"


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", b"abc"),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", b"until the end"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nfourEXTRA", b"four"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;x=y\r\na\r\n0\r\nT: 1\r\n\r\nEXTRA", b"a"),
    ],
    ids=["informational-skipped", "until-close", "length", "chunked-with-extensions-and-trailers"],
)
async def test_each_framing_gives_its_body_and_nothing_after_it(answer: bytes, body: bytes) -> None:
    async with raw_server(answering(answer)) as url:
        assert await stream_body(url) == body


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        (b"", ErrorKind.UPSTREAM_UNAVAILABLE, "disconnected without sending a response"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n", ErrorKind.PROTOCOL_VIOLATION, "'gzip'"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX", ErrorKind.WORKER_RESET, "chunk footer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ErrorKind.WORKER_RESET, "chunk header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", ErrorKind.WORKER_RESET, "received 5 bytes"),
    ],
    ids=["closed-before-head", "encoded", "bad-footer", "bad-header", "cut-short"],
)
async def test_a_broken_answer_is_one_error_kind_that_says_what_broke(
    answer: bytes, kind: ErrorKind, words: str
) -> None:
    async with raw_server(answering(answer)) as url:
        with pytest.raises(WorkerError) as caught:
            await stream_body(url)
    assert caught.value.kind is kind, caught.value
    assert words in caught.value.message


async def test_a_header_that_cannot_be_sent_is_refused_by_name_without_its_value() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with raw_server(serve) as url:
        with pytest.raises(WorkerError) as caught:
            await stream_body(url, auth_headers={"Authorization": f"Bearer {SECRET}\r\nX-Injected: 1"})
    assert "Authorization" in caught.value.message
    assert SECRET not in caught.value.message and "Injected" not in caught.value.message


async def test_a_refused_connection_is_upstream_unavailable_and_names_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: connecting is refused
        with pytest.raises(WorkerError) as caught:
            await stream_body(url)
    assert caught.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE
    assert url in caught.value.message and "ConnectError" in caught.value.message


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "host_header"),
    [
        ("https://bücher.example/v1", "xn--bcher-kva.example", 443, True, "xn--bcher-kva.example"),
        ("http://[::1]:8080/v1", "::1", 8080, False, "[::1]:8080"),
        ("http://10.0.0.1/v1", "10.0.0.1", 80, False, "10.0.0.1"),
    ],
)
def test_a_url_is_connected_to_and_named_in_its_ascii_form(
    url: str, host: str, port: int, tls: bool, host_header: str
) -> None:
    connections = OwnConnections(AsyncioBackend(), ssl.create_default_context(), {}, connect_timeout=1, write_timeout=1)
    target = connections._target(url)
    assert (target.host, target.port, target.tls) == (host, port, tls)
    assert target.head == f" /v1 HTTP/1.1\r\nHost: {host_header}\r\n".encode()


async def test_closing_the_client_closes_a_stream_its_reader_left_open() -> None:
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n")  # and no end
        await writer.drain()
        if await reader.read() == b"":
            closed.set()
        writer.close()

    async with raw_server(serve) as url:
        client = HttpClient(url, retry=RetryPolicy.none())
        opened = client.open_stream("POST", "/s", json_body={})
        stream = await opened.__aenter__()  # left open: its reader went away without closing it
        assert await anext(aiter(stream.chunks())) == b"ok"
        await client.aclose()
        await asyncio.wait_for(closed.wait(), 5)
