"""The socket layer under the shared HTTP client: httpcore's network backend, on asyncio itself.

httpcore reaches asyncio through anyio by default. Every read then costs a
cancel scope, a sniffio lookup and a pause and resume of the transport (two
``epoll_ctl`` calls): about as much as all of the harness's own work on a
token, and time during which a token that has arrived waits to be stamped.
Here a protocol buffers what arrives and a read takes it; nothing else runs.
The protocol also notes when bytes arrive (``ARRIVED_AT``): the time a token
reached the harness, before httpcore, httpx and a busy event loop had their turn.

On Linux a plain TCP connection is read with ``recvmsg`` and asks the kernel
to stamp what it receives (``SO_TIMESTAMPNS``), so that time is when the bytes
reached this host, not when this process woke up to read them: neither a
sleeping vCPU nor the event loop's other work on 50 streams moves a token's
time. A read that takes bytes which arrived at different times (the kernel
merges them) carries the newest one's stamp: a token is never stamped early. A
TLS connection is handed to asyncio's transports (no stamps there) and is
stamped when its bytes reach the protocol.

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
from typing import Any, Protocol, cast

import httpcore
import httpx

from .kernel_stamps import KERNEL_STAMPS, receive, stamp_receives

__all__ = ["ARRIVED_AT", "AsyncioBackend", "AsyncioTransport"]

ARRIVED_AT = "conform_arrived_at"
"""The network stream's extra info (``get_extra_info``) that tells when the bytes of its last read arrived."""

_HIGH_WATER = 256 * 1024
"""Bytes buffered before the socket stops being read (the engine then waits on TCP flow control)."""

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
"""httpcore's socket option shape."""

_READ_SIZE = 64 * 1024
"""What one ``recvmsg`` takes at most. ``recvmsg`` allocates a buffer of this size for every read, and
malloc serves 128 KiB or more with an ``mmap`` and a ``munmap`` of its own: asyncio's 256 KiB made a
read of one token cost some 37 us more than 64 KiB does (a third of the client's CPU per token)."""


@contextlib.contextmanager
def _mapped(error: type[Exception], timeout: type[Exception]) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or "timed out") from exc
    except (OSError, ssl.SSLError) as exc:
        raise error(str(exc) or type(exc).__name__) from exc


class _ReadControl(Protocol):
    """What the protocol asks of what feeds it: an asyncio transport, or a `_StampedReader`."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class _Protocol(asyncio.Protocol):
    """Buffers what arrives; wakes the one reader waiting for it."""

    def __init__(self) -> None:
        self.transport: _ReadControl | None = None
        self.buffer = bytearray()
        self.arrived_at = 0.0
        """When the oldest buffered bytes arrived (monotonic seconds)."""
        self.last_arrived_at = 0.0
        """When the newest buffered bytes arrived."""
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
        self.received(data, time.monotonic())

    def received(self, data: bytes, at: float) -> None:
        """`data` reached this host at `at`."""
        if not self.buffer:
            self.arrived_at = at
        self.last_arrived_at = at
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
            self.arrived_at = self.last_arrived_at  # unknown, but no later than that
        if self._paused_reading and len(self.buffer) < _HIGH_WATER // 2 and self.transport is not None:
            self._paused_reading = False
            self.transport.resume_reading()
        return data

    async def drain(self) -> None:
        while self._paused_writing and not self.closed:
            self._writable = asyncio.get_running_loop().create_future()
            await self._writable


class _BufferedStream(httpcore.AsyncNetworkStream):
    """Reads what a `_Protocol` buffered; what it is connected through is the subclass's."""

    def __init__(self, protocol: _Protocol) -> None:
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
        if self._protocol.closed or self._closing():
            raise httpcore.WriteError("the connection is closed")
        with _mapped(httpcore.WriteError, httpcore.WriteTimeout):
            async with asyncio.timeout(timeout):
                await self._send(buffer)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(httpcore.ConnectError, httpcore.ConnectTimeout):
            transport, protocol = await self._transport_for_tls()
            tls = await asyncio.get_running_loop().start_tls(
                transport, protocol, ssl_context, server_hostname=server_hostname, ssl_handshake_timeout=timeout
            )
        if tls is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        protocol.transport = tls
        return _Stream(tls, protocol)

    def _closing(self) -> bool:
        return False

    async def _send(self, buffer: bytes) -> None:
        raise NotImplementedError

    async def _transport_for_tls(self) -> tuple[asyncio.Transport, _Protocol]:
        """The asyncio transport and protocol to start TLS on."""
        raise NotImplementedError

    def get_extra_info(self, info: str) -> Any:
        if info == ARRIVED_AT:  # first: asked once per read
            return self._protocol.read_arrived_at
        if info == "is_readable":
            # httpcore asks before reusing an idle connection: anything arrived (an EOF, a stray byte)
            # means the server has given it up. The protocol has already read it: no poll needed.
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.eof or protocol.closed
        if info == "ssl_object":
            return self._ssl_object()
        sock = self._socket()
        if info == "socket":
            return sock
        if info == "client_addr":
            return sock.getsockname() if sock is not None else None
        if info == "server_addr":
            return sock.getpeername() if sock is not None else None
        return None

    def _ssl_object(self) -> ssl.SSLObject | None:
        return None

    def _socket(self) -> socket.socket | None:
        raise NotImplementedError


class _Stream(_BufferedStream):
    """A connection through an asyncio transport: TLS, a Unix socket, or TCP where the kernel does not stamp."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        super().__init__(protocol)
        self._transport = transport

    def _closing(self) -> bool:
        return self._transport.is_closing()

    async def _send(self, buffer: bytes) -> None:
        self._transport.write(buffer)
        await self._protocol.drain()

    async def aclose(self) -> None:
        self._transport.close()

    async def _transport_for_tls(self) -> tuple[asyncio.Transport, _Protocol]:
        return self._transport, self._protocol

    def _ssl_object(self) -> ssl.SSLObject | None:
        return cast("ssl.SSLObject | None", self._transport.get_extra_info("ssl_object"))

    def _socket(self) -> socket.socket | None:
        return cast("socket.socket | None", self._transport.get_extra_info("socket"))


class _StampedReader:
    """Reads a connected socket with ``recvmsg`` and gives each read to the protocol with its kernel stamp."""

    def __init__(self, sock: socket.socket, protocol: _Protocol) -> None:
        self._sock = sock
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._reading = False
        self._done = False
        """EOF, an error, or detached: nothing more is read."""
        stamp_receives(sock)
        protocol.transport = self
        self.resume_reading()

    def _read_ready(self) -> None:
        try:
            data, at = receive(self._sock, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.detach()
            self._protocol.connection_lost(exc)
            return
        if data:
            self._protocol.received(data, at)
        else:
            self.detach()
            self._protocol.eof_received()

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._sock.fileno())

    def resume_reading(self) -> None:
        if not self._reading and not self._done:
            self._reading = True
            self._loop.add_reader(self._sock.fileno(), self._read_ready)

    def detach(self) -> None:
        """Read no more from the socket (which stays open).

        The protocol lets go of this reader too: the two refer to each other, and a cycle would keep a
        closed connection's objects for the garbage collector, whose pass then stops every stream.
        """
        self.pause_reading()
        self._done = True
        if self._protocol.transport is self:
            self._protocol.transport = None


class _StampedStream(_BufferedStream):
    """A plain TCP connection whose reads carry the kernel's arrival time (Linux)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(_Protocol())
        self._sock = sock
        self._reader = _StampedReader(sock, self._protocol)

    async def _send(self, buffer: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self._sock, buffer)

    async def aclose(self) -> None:
        self._reader.detach()
        if not self._protocol.closed:
            self._protocol.connection_lost(None)
        self._sock.close()

    async def _transport_for_tls(self) -> tuple[asyncio.Transport, _Protocol]:
        # The socket goes to asyncio's transports, which do TLS: it is read without stamps from here on.
        self._reader.detach()
        return await asyncio.get_running_loop().create_connection(_Protocol, sock=self._sock)

    def _socket(self) -> socket.socket | None:
        return self._sock


async def _connected_socket(host: str, port: int, local_address: str | None) -> socket.socket:
    """A non-blocking TCP socket connected to host:port, trying each of its addresses in turn."""
    loop = asyncio.get_running_loop()
    try:
        # An address needs no lookup: resolved here, not in the executor's thread (some 140 us of CPU for the
        # round trip, and every stream opens a connection of its own).
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not addresses:
        raise OSError(f"no address for {host}")
    errors: list[OSError] = []
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            if local_address:
                sock.bind((local_address, 0))
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    if len(errors) == 1:
        raise errors[0]
    raise OSError("; ".join(dict.fromkeys(str(e) for e in errors)))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(httpcore.ConnectError, httpcore.ConnectTimeout):
            async with asyncio.timeout(timeout):
                stream = await self._connect(host, port, local_address)
        sock = stream.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return stream

    @staticmethod
    async def _connect(host: str, port: int, local_address: str | None) -> _BufferedStream:
        if KERNEL_STAMPS:
            return _StampedStream(await _connected_socket(host, port, local_address))
        local = (local_address, 0) if local_address else None
        transport, protocol = await asyncio.get_running_loop().create_connection(
            _Protocol, host, port, local_addr=local
        )
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
    """httpx's own transport (request mapping, exception mapping), its connection pool on AsyncioBackend.

    Its backend and TLS context are public: streamed requests use them without the pool (`_own_connection`).
    """

    def __init__(self, *, verify: bool | ssl.SSLContext, limits: httpx.Limits) -> None:
        # Made once for both pools: loading the CA bundle takes some 25 ms, and httpx takes a made context as is.
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        ssl_context.set_alpn_protocols(["http/1.1"])  # what httpcore sets before each handshake: HTTP/1.1 only
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self.ssl_context = ssl_context
        self.backend = AsyncioBackend()
        # httpx builds its pool with httpcore's default backend and takes no other: replace the pool,
        # built the way httpx builds it (tests/adapters/test_network.py pins that the swap holds).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )
