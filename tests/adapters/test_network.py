"""The asyncio network backend under the shared HTTP client: it is the one in use, and it behaves as sockets do."""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from adapters import LlamaCppAdapter, TaskRequest
from adapters._network import ARRIVED_AT, AsyncioTransport
from adapters.kernel_stamps import kernel_arrival
from harness.stream import collect
from stubs import StubServer
from tests.helpers import Serve, answering, raw_server, read_request

LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8)
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def test_the_adapters_stream_over_it() -> None:
    async with StubServer("llamacpp") as stub:
        adapter = LlamaCppAdapter(stub.url)
        try:
            # 10,000 frames are over a megabyte: the socket is paused and resumed on the way.
            record = await collect(adapter, TaskRequest(prompt="big", max_tokens=10_000))
        finally:
            await adapter.aclose()
    assert record.error is None, record.error
    assert len(record.tokens) == 10_000
    transport = adapter.http._client._transport
    assert isinstance(transport, AsyncioTransport), "HttpClient's default transport is the asyncio one"


async def test_its_pool_really_runs_on_the_asyncio_backend() -> None:
    """httpx takes no backend: AsyncioTransport swaps its pool, and this pins that the swap holds."""
    async with (
        StubServer("llamacpp") as stub,
        httpx.AsyncClient(transport=AsyncioTransport(verify=True, limits=LIMITS)) as client,
    ):
        response = await client.get(stub.url + "/health")
    assert response.status_code == 200
    assert type(response.extensions["network_stream"]).__module__ == "adapters._network"


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    connections = 0

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(ANSWER)
        await writer.drain()
        writer.close()  # keep-alive was not refused, but the server goes away anyway

    async with (
        raw_server(answer_once) as url,
        httpx.AsyncClient(transport=AsyncioTransport(verify=True, limits=LIMITS)) as client,
    ):
        first = await client.get(url)
        await asyncio.sleep(0.05)
        second = await client.get(url)
    assert (first.text, second.text) == ("ok", "ok")
    assert connections == 2


def cut_short(*, reset: bool) -> Serve:
    """A server that promises 100 bytes of body, sends 7, then closes (FIN) or resets (RST) the connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()

    return serve


@pytest.mark.parametrize(
    ("reset", "error"), [(True, httpx.ReadError), (False, httpx.RemoteProtocolError)], ids=["reset", "closed"]
)
async def test_a_body_cut_short_raises_what_httpx_raises_over_anyio(reset: bool, error: type[Exception]) -> None:
    async with (
        raw_server(cut_short(reset=reset)) as url,
        httpx.AsyncClient(transport=AsyncioTransport(verify=True, limits=LIMITS)) as client,
    ):
        with pytest.raises(error):
            await client.get(url)


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connecting is refused
        async with httpx.AsyncClient(transport=AsyncioTransport(verify=True, limits=LIMITS)) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_an_address_is_not_looked_up_and_a_host_name_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """An IP address connects without the loop's resolver (a thread round trip per connection); a name uses it."""

    loop = asyncio.get_running_loop()
    looked_up: list[str] = []
    resolve = loop.getaddrinfo

    async def counted(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(str(host))
        return await resolve(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", counted)
    async with raw_server(answering(ANSWER)) as url:
        port = url.rsplit(":", 1)[1]
        async with httpx.AsyncClient(transport=AsyncioTransport(verify=True, limits=LIMITS)) as client:
            assert (await client.get(url)).text == "ok"
            assert looked_up == []
            assert (await client.get(f"http://localhost:{port}/", headers={"Connection": "close"})).text == "ok"
    assert looked_up == ["localhost"]


async def test_a_read_tells_when_its_bytes_arrived_not_when_it_was_read() -> None:
    async def answer_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"body")  # arrives while the client is busy elsewhere
        await writer.drain()
        writer.close()

    async with (
        raw_server(answer_after) as url,
        httpx.AsyncClient(transport=AsyncioTransport(verify=True, limits=LIMITS)) as client,
        client.stream("GET", url) as response,
    ):
        await asyncio.sleep(0.3)
        read_at = time.monotonic()
        assert await response.aread() == b"body"
        arrived = response.extensions["network_stream"].get_extra_info(ARRIVED_AT)
    assert read_at - 0.3 < arrived < read_at - 0.1


def timespec_message(realtime_ns: int) -> list[tuple[int, int, bytes]]:
    """The control message the kernel attaches to a read with SO_TIMESTAMPNS on (SCM_TIMESTAMPNS = 35)."""
    return [(socket.SOL_SOCKET, 35, struct.pack("@ll", *divmod(realtime_ns, 1_000_000_000)))]


def test_a_kernel_stamp_becomes_the_monotonic_time_of_its_arrival() -> None:
    before = time.monotonic()
    at = kernel_arrival(timespec_message(time.time_ns() - 5_000_000))  # 5 ms ago
    assert before - 0.0051 < at < time.monotonic() - 0.0049


@pytest.mark.parametrize(
    "age_ns",
    [
        None,
        -(10**9),  # in the future: the clock was set back since
        3600 * 10**9,  # an hour old: the clock was set forward since
    ],
    ids=["no stamp", "future", "stale"],
)
def test_without_a_usable_kernel_stamp_a_read_arrived_now(age_ns: int | None) -> None:
    ancillary = [] if age_ns is None else timespec_message(time.time_ns() - age_ns)
    before = time.monotonic()
    assert before <= kernel_arrival(ancillary) <= time.monotonic()


def test_other_control_messages_are_not_taken_for_a_stamp() -> None:
    (_, _, five_ms_old) = timespec_message(time.time_ns() - 5_000_000)[0]
    before = time.monotonic()
    assert before <= kernel_arrival([(socket.SOL_SOCKET, 99, five_ms_old)])


@pytest.mark.skipif(sys.platform != "linux", reason="kernel receive timestamps (SO_TIMESTAMPNS) are read on Linux only")
async def test_a_token_keeps_its_arrival_time_while_the_event_loop_is_busy() -> None:
    """The kernel stamps the bytes: a loop blocked when they arrive does not make them late."""
    read = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
                time.sleep(0.05)
                connection.sendall(b"body")
                # Open until read: a FIN that came meanwhile would join the body's buffer, and its stamp.
                read.wait(5)

        server = threading.Thread(target=serve)
        server.start()
        try:
            async with (
                httpx.AsyncClient(transport=AsyncioTransport(verify=True, limits=LIMITS)) as client,
                client.stream("GET", f"http://127.0.0.1:{port}/") as response,
            ):
                headers_at = time.monotonic()
                time.sleep(0.3)  # the whole loop is blocked while the body arrives  # noqa: ASYNC251
                assert await response.aread() == b"body"
                read.set()
                arrived = response.extensions["network_stream"].get_extra_info(ARRIVED_AT)
        finally:
            read.set()
            server.join()
    assert headers_at + 0.03 < arrived < headers_at + 0.2


async def test_finished_streams_leave_nothing_to_the_garbage_collector(stub_process: Any) -> None:
    """A reference cycle would leave each response and its connection to a collection that stops every stream.

    The stub runs in its own process, so that the only garbage here is the client's.
    """
    stub = stub_process()
    adapter = LlamaCppAdapter(stub.url)
    try:
        await collect(adapter, TaskRequest(prompt="warm-up", max_tokens=2))
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for n in range(5):
                record = await collect(adapter, TaskRequest(prompt=f"freed {n}", max_tokens=3))
                assert record.error is None
            gc.collect()
            ours = sorted(
                {f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage if _of_the_client(type(o))}
            )
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    finally:
        await adapter.aclose()
    assert ours == [], f"left in reference cycles: {ours}"


def _of_the_client(kind: type) -> bool:
    """A type the client side of a stream is made of: the HTTP layers' or ours."""
    return kind.__module__.split(".")[0] in {"httpx", "httpcore", "h11", "adapters"}
