"""The socket layer under the shared HTTP client: httpcore's network backend, on asyncio itself.

httpcore reaches asyncio through anyio by default. Every read then costs a
cancel scope, a sniffio lookup and a pause and resume of the transport (two
``epoll_ctl`` calls): about as much as all of the harness's own work on a
token, and time during which a token that has arrived waits to be stamped.
Here a protocol buffers what arrives and a read takes it; nothing else runs.
The protocol also notes when bytes arrive (``ARRIVED_AT``): the time a token
reached the harness, before httpcore, httpx and a busy event loop had their turn.

The methods take httpcore's ``timeout`` arguments (its interface), hence the
``noqa: ASYNC109``. Errors are httpcore's own (``ConnectError``, ``ReadError``…),
which httpx maps to its exception tree as it does for any backend. Only plain
HTTP/1.1 over TCP or TLS is needed, so nothing else is offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any, cast

import httpcore
import httpx

__all__ = ["ARRIVED_AT", "AsyncioBackend", "AsyncioTransport"]

ARRIVED_AT = "conform_arrived_at"
"""The network stream's extra info (``get_extra_info``) that tells when the bytes of its last read arrived."""

_HIGH_WATER = 256 * 1024
"""Bytes buffered before the socket stops being read (the engine then waits on TCP flow control)."""

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
"""httpcore's socket option shape."""


@contextlib.contextmanager
def _mapped(error: type[Exception], timeout: type[Exception]) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or "timed out") from exc
    except (OSError, ssl.SSLError) as exc:
        raise error(str(exc) or type(exc).__name__) from exc


class _Protocol(asyncio.Protocol):
    """Buffers what arrives; wakes the one reader waiting for it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.arrived_at = 0.0
        """When the oldest buffered bytes arrived (monotonic seconds)."""
        self.read_arrived_at: float | None = None
        """When the bytes of the last read arrived: a token's arrival, before any parsing."""
        self.eof = False
        self.lost: Exception | None = None
        self.closed = False
        self._reader: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._writable: asyncio.Future[None] | None = None
        self._paused_writing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do all a Transport does without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.buffer:
            self.arrived_at = time.monotonic()
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self._paused_reading and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    async def read(self, max_bytes: int) -> bytes:
        while not self.buffer:
            if self.lost is not None:
                raise httpcore.ReadError(str(self.lost) or type(self.lost).__name__)
            if self.eof or self.closed:
                return b""
            self._reader = asyncio.get_running_loop().create_future()
            await self._reader
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        self.read_arrived_at = self.arrived_at
        if self.buffer:
            self.arrived_at = time.monotonic()  # unknown, but no earlier than now
        if self._paused_reading and len(self.buffer) < _HIGH_WATER // 2 and self.transport is not None:
            self._paused_reading = False
            self.transport.resume_reading()
        return data

    async def drain(self) -> None:
        while self._paused_writing and not self.closed:
            self._writable = asyncio.get_running_loop().create_future()
            await self._writable


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        if timeout is None:
            return await self._protocol.read(max_bytes)
        with _mapped(httpcore.ReadError, httpcore.ReadTimeout):
            async with asyncio.timeout(timeout):
                return await self._protocol.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        if self._protocol.closed or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        with _mapped(httpcore.WriteError, httpcore.WriteTimeout):
            self._transport.write(buffer)
            async with asyncio.timeout(timeout):
                await self._protocol.drain()

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        with _mapped(httpcore.ConnectError, httpcore.ConnectTimeout):
            transport = await loop.start_tls(
                self._transport,
                self._protocol,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        if transport is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport
        return _Stream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == ARRIVED_AT:  # first: asked once per read
            return self._protocol.read_arrived_at
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks before reusing an idle connection: anything arrived (an EOF, a stray byte)
            # means the server has given it up. The protocol has already read it: no poll needed.
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.eof or protocol.closed
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        with _mapped(httpcore.ConnectError, httpcore.ConnectTimeout):
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(_Protocol, host, port, local_addr=local)
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Stream(transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        with _mapped(httpcore.ConnectError, httpcore.ConnectTimeout):
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_unix_connection(_Protocol, path)
        return _Stream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request mapping, exception mapping), its connection pool on AsyncioBackend."""

    def __init__(self, *, verify: bool | ssl.SSLContext, limits: httpx.Limits) -> None:
        # Made once for both pools: loading the CA bundle takes some 25 ms, and httpx takes a made context as is.
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx builds its pool with httpcore's default backend and takes no other: replace the pool,
        # built the way httpx builds it (tests/adapters/test_network.py pins that the swap holds).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend(),
        )
