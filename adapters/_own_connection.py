"""Streamed requests, each on a connection of its own: written whole, the head parsed by h11, the body unframed here.

Every streamed request of the harness opens a connection and closes it when the
stream is done (a cancel closes it early, which is how engines learn of it), so
it needs no pool, no keep-alive and no reuse. What it needs is low CPU per read,
because a token stream is a read per token, and per request, because a load run
starts a hundred requests a second. Through httpx, a request cost about 1.2 ms of
this VM's CPU before it reached the socket (URL merging, cookies, auth and
redirect hooks), and each read went through httpcore's HTTP/1.1 connection and
h11, one event at a time, under a context manager and four async generators:
together more CPU than the harness's own work. Here the request is bytes joined
from what was prepared once per URL, h11 checks the response head once, and
`_http1` unframes the body straight from each read.

It runs on any httpcore network backend (ours: `_network.AsyncioBackend`, whose
streams stamp each read's arrival) and raises httpx's exceptions, as a request
through httpx would: the caller maps them the same way.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

import h11
import httpcore
import httpx

from ._http1 import BodyDecoder, body_decoder

__all__ = ["OwnConnections", "OwnResponse"]

_READ_SIZE = 256 * 1024
"""The most one read takes of what the connection buffered (a slice: nothing of this size is allocated)."""

_ERRORS: dict[type[Exception], type[httpx.HTTPError]] = {
    # Subclasses first: the first match maps.
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    h11.RemoteProtocolError: httpx.RemoteProtocolError,
}


_STAND_IN_HEADERS = [("Host", "-"), ("Content-Length", "0")]
"""The request h11 is told of before it reads a response (it reads one only after its side sent one)."""


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except tuple(_ERRORS) as exc:
        mapped = next(to for source, to in _ERRORS.items() if isinstance(exc, source))
        raise mapped(str(exc) or type(exc).__name__) from exc


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a URL's requests go, and the start of their head: worked out once per URL."""

    host: str
    port: int
    tls: bool
    head: bytes
    """The request head but its per-request parts: from the space after the method to the CRLF that ends
    the last constant header (Host first)."""


def _sendable(name: str, value: str) -> bool:
    headers = [(name, value)] if name.lower() == "host" else [("Host", "-"), (name, value)]
    try:
        h11.Connection(h11.CLIENT).send(h11.Request(method="M", target="/", headers=headers))
    except h11.LocalProtocolError:
        return False
    return True


class OwnResponse:
    """A response whose head arrived; its body is read a read's worth at a time, and closing it closes
    the connection."""

    __slots__ = ("_closed", "_decoder", "_leftover", "_open", "headers", "network", "sent_at", "status_code")

    def __init__(
        self,
        head: h11.Response,
        network: httpcore.AsyncNetworkStream,
        decoder: BodyDecoder,
        leftover: bytes,
        closed: bool,
        sent_at: float,
        open_responses: set[OwnResponse],
    ) -> None:
        self.status_code: int = head.status_code
        self.headers = httpx.Headers(head.headers.raw_items())
        self.network = network
        """The connection, which knows when each read's bytes arrived (``get_extra_info``)."""
        self.sent_at = sent_at
        """When the request was written to the connection (monotonic seconds)."""
        self._decoder = decoder
        self._leftover = leftover
        """What came with the head, past its end."""
        self._closed = closed
        self._open = open_responses
        """Its client's open responses, which it is one of until it is closed."""
        open_responses.add(self)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body: each read's body bytes in one piece, so that one read's frames are decoded together
        and carry that read's arrival time. A broken body raises ``httpx.RemoteProtocolError``, a broken
        connection ``httpx.ReadError``."""
        decoder = self._decoder
        leftover, self._leftover = self._leftover, b""
        if leftover:
            data = decoder.feed(leftover)
            if data:
                yield data
        if self._closed:
            decoder.end()
        read = self.network.read
        while not decoder.finished:
            try:
                chunk = await read(_READ_SIZE)
            except httpcore.ReadError as exc:  # _as_httpx_errors's mapping, without a context manager per read
                raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
            if not chunk:
                decoder.end()
                continue
            data = decoder.feed(chunk)
            if data:
                yield data
        if decoder.error is not None:
            raise httpx.RemoteProtocolError(decoder.error)

    async def aclose(self) -> None:
        self._open.discard(self)
        await self.network.aclose()


class OwnConnections:
    """Requests to one service, each on a connection of its own."""

    def __init__(
        self,
        backend: httpcore.AsyncNetworkBackend,
        ssl_context: ssl.SSLContext,
        headers: Mapping[str, str],
        *,
        connect_timeout: float,
        write_timeout: float,
    ) -> None:
        self._backend = backend
        self._ssl_context = ssl_context
        self._headers = dict(headers)
        self._connect_timeout = connect_timeout
        self._write_timeout = write_timeout
        self._targets: dict[str, _Target] = {}
        self._open: set[OwnResponse] = set()

    async def aclose(self) -> None:
        """Close the connections of responses still open: a stream its reader left without closing it."""
        for response in list(self._open):
            await response.aclose()

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = self._prepare(url)
        return target

    def _prepare(self, url: str) -> _Target:
        """The target of `url`, as httpx would send it (its URL parsing and quoting), and the constant
        headers, checked by h11 (a header value with a line break in it is refused here, once)."""
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"{url}: the scheme must be http or https")
        tls = parsed.scheme == "https"
        headers = [("Host", parsed.netloc.decode("ascii")), *self._headers.items()]
        try:
            head = h11.Connection(h11.CLIENT).send(h11.Request(method="M", target=parsed.raw_path, headers=headers))
        except h11.LocalProtocolError:
            # Not h11's message: it quotes the header, which may hold a secret in a form the redactor misses.
            bad = next((name for name, value in headers if not _sendable(name, value)), "?")
            raise httpx.LocalProtocolError(
                f"{url}: the header {bad} is not valid HTTP (a line break or a control character in it)"
            ) from None
        assert head is not None and head.startswith(b"M ")
        host = parsed.raw_host.decode("ascii")  # an international name in its IDNA form, an IPv6 one bare
        return _Target(host, parsed.port or (443 if tls else 80), tls, head[1:-2])

    async def open(self, method: str, url: str, content_type: str, body: bytes) -> OwnResponse:
        """Send a request on a new connection; the response once its head arrived."""
        target = self._target(url)
        with _as_httpx_errors():
            network = await self._backend.connect_tcp(target.host, target.port, timeout=self._connect_timeout)
        try:
            with _as_httpx_errors():
                if target.tls:
                    network = await network.start_tls(
                        self._ssl_context, server_hostname=target.host, timeout=self._connect_timeout
                    )
                wire = b"%b%bContent-Type: %b\r\nContent-Length: %d\r\n\r\n%b" % (
                    method.encode("ascii"),
                    target.head,
                    content_type.encode("ascii"),
                    len(body),
                    body,
                )
                sent_at = time.monotonic()
                return await self._exchange(method, wire, network, sent_at)
        except BaseException:
            await network.aclose()
            raise

    async def _exchange(
        self, method: str, wire: bytes, network: httpcore.AsyncNetworkStream, sent_at: float
    ) -> OwnResponse:
        try:
            await network.write(wire, timeout=self._write_timeout)
        except httpcore.WriteError as exc:
            # A server may answer (a 413, a 401) and close before it took the whole request: read its answer.
            write_error: httpcore.WriteError | None = exc
        else:
            write_error = None
        # h11 reads a response only after its own side sent a request: it is told of one, for its state.
        connection = h11.Connection(h11.CLIENT)
        connection.send(h11.Request(method=method, target="/", headers=_STAND_IN_HEADERS))
        head = await _read_head(connection, network, write_error)
        leftover, closed = connection.trailing_data
        decoder = body_decoder(method, head.status_code, list(head.headers))
        return OwnResponse(head, network, decoder, leftover, closed, sent_at, self._open)


async def _read_head(
    connection: h11.Connection, network: httpcore.AsyncNetworkStream, write_error: httpcore.WriteError | None
) -> h11.Response:
    """The final response head (informational ones are skipped)."""
    received = False
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError:
            if received:
                raise
            event = h11.ConnectionClosed()  # closed before a byte: h11's word for it names its state machine
        if event is h11.NEED_DATA:
            data = await network.read(_READ_SIZE)
            received = received or bool(data)
            connection.receive_data(data)
        elif isinstance(event, h11.Response):
            return event
        elif isinstance(event, h11.ConnectionClosed):
            if write_error is not None:
                raise write_error
            raise h11.RemoteProtocolError("Server disconnected without sending a response.")
