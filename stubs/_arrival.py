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
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["ARRIVED_AT", "ArrivalStamps", "stamp_arrival"]


class ArrivalStamps(asyncio.Protocol):
    """Passes everything to aiohttp's protocol, noting when each request's first bytes arrived."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self._inner = inner
        self._loop = asyncio.get_running_loop()
        self.arrived_at: float | None = None
        """Event-loop time of the first bytes not yet taken by a handler."""
        self.taken = False
        """A handler took the stamp and has not finished: what arrives now is its request's body."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.arrived_at is None and not self.taken:
            self.arrived_at = self._loop.time()
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
