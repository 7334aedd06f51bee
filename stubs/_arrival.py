"""When a request's first bytes reached the stub: where an engine's clock for it starts.

aiohttp hands a request to its handler two event-loop turns after its bytes
arrived (the parser wakes the connection's task, which starts the handler's), and
each turn runs whatever other streams had due first. Counting the scripted time
to the first token from handler entry would add those turns to it. The stub's
server therefore puts `ArrivalStamps` between each connection's transport and
aiohttp's protocol: it notes the time of the first bytes of each request, and a
middleware gives that time to the request (`ARRIVED_AT`).

A request's first bytes are the first to arrive after the previous request on
the connection was handled: body bytes that arrive while its handler runs
belong to it, not to the next.

On Linux the time is the kernel's: the server listens on a `StampedListener`,
whose connections read with ``recvmsg`` and keep the receive stamp of their
last read (`kernel_stamps`). So a stub that woke up late to read a
request (a busy loop, a vCPU the hypervisor held back) still counts its
scripted delays from when the request reached the machine. Where there is no
stamp (another system, or a transport that reads some other way), the time is
when the bytes reached the protocol.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

from .kernel_stamps import ANCILLARY_SIZE, kernel_arrival, receive, stamp_receives

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["ARRIVED_AT", "ArrivalStamps", "StampedListener", "stamp_arrival"]


class _StampedConnection(socket.socket):
    """An accepted connection that keeps the kernel's receive time of its last read."""

    arrived_at: float | None = None
    """Monotonic seconds; None once taken, until the next read."""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags:
            return super().recv(bufsize, flags)
        data, self.arrived_at = receive(self, bufsize)
        return data

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        if flags:
            return super().recv_into(buffer, nbytes, flags)
        view = memoryview(buffer)
        received, ancillary, _, _ = self.recvmsg_into([view[:nbytes] if nbytes else view], ANCILLARY_SIZE)
        self.arrived_at = kernel_arrival(ancillary)
        return received

    def take_arrival(self) -> float | None:
        at, self.arrived_at = self.arrived_at, None
        return at


class StampedListener(socket.socket):
    """A listening socket whose connections are `_StampedConnection`s, found again by their descriptor."""

    def __init__(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> None:
        super().__init__(family, kind)
        stamp_receives(self)  # accepted connections inherit it
        self._accepted: weakref.WeakValueDictionary[int, _StampedConnection] = weakref.WeakValueDictionary()

    def accept(self) -> tuple[socket.socket, object]:
        fd, address = self._accept()  # type: ignore[attr-defined]  # socket.socket.accept does the same
        connection = _StampedConnection(self.family, self.type, self.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            connection.setblocking(True)
        self._accepted[fd] = connection
        return connection, address

    def claim(self, transport: asyncio.BaseTransport) -> _StampedConnection | None:
        """The connection under `transport`, if this listener accepted it."""
        sock = transport.get_extra_info("socket")
        return self._accepted.pop(sock.fileno(), None) if sock is not None else None


class ArrivalStamps(asyncio.Protocol):
    """Passes everything to aiohttp's protocol, noting when each request's first bytes arrived."""

    def __init__(self, inner: asyncio.Protocol, listener: StampedListener | None = None) -> None:
        self._inner = inner
        self._listener = listener
        self._connection: _StampedConnection | None = None
        self._loop = asyncio.get_running_loop()
        self.arrived_at: float | None = None
        """Event-loop time of the first bytes not yet taken by a handler."""
        self.taken = False
        """A handler took the stamp and has not finished: what arrives now is its request's body."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._listener is not None:
            self._connection = self._listener.claim(transport)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        kernel = self._connection.take_arrival() if self._connection is not None else None
        if self.arrived_at is None and not self.taken:
            self.arrived_at = kernel if kernel is not None else self._loop.time()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


ARRIVED_AT = web.RequestKey("conform_arrived_at", float)
"""When a request's first bytes reached the stub (event-loop clock)."""


@web.middleware
async def stamp_arrival(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request, not only generations: one on the same connection before a generation must take its own stamp."""
    stamps = _stamps(request)
    if stamps is None:
        return await handler(request)
    arrived_at, stamps.arrived_at, stamps.taken = stamps.arrived_at, None, True
    request[ARRIVED_AT] = arrived_at if arrived_at is not None else asyncio.get_running_loop().time()
    try:
        return await handler(request)
    finally:
        stamps.taken = False  # what arrives from now on begins the next request


def _stamps(request: web.BaseRequest) -> ArrivalStamps | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, ArrivalStamps) else None
