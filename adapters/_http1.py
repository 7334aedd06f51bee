"""HTTP/1.1 response bodies, unframed with ``bytes.find``: chunked, length-delimited, or read until close.

h11 decodes a body one event at a time: a regex match per chunk header, a
receive buffer, a ``Data`` object per chunk, and above it httpcore's and
httpx's layers, each an async generator with its own bookkeeping. On a token
stream every token is a chunk, and often a read of its own, so that machinery
ran per token and took more CPU than the rest of the harness. A decoder here
takes one read and gives back the body bytes it held, joined: one call, no
events. h11 still parses the response head (see ``_own_connection``), and is
the test oracle for what is decoded here: the same bytes, the same rejections,
on any cut of the input.

A decoder never raises. ``feed`` returns the body bytes that came before any
fault, and sets ``error`` (what h11 would have raised, in words) or ``done``;
the caller delivers the bytes, then acts on the state.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["BodyDecoder", "ChunkedBody", "LengthBody", "UntilCloseBody", "body_decoder"]

MAX_LINE: Final = 16 * 1024
"""The longest unfinished chunk header or trailer section (h11's ``max_incomplete_event_size``)."""

_CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
"""A chunk-size line, as h11 takes it: the size, any extensions (ignored), optional whitespace."""

_FIELD_VCHAR = rb"[^\x00\s]"
_TRAILER_FIELD = re.compile(
    rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+:[ \t]*(?:" + _FIELD_VCHAR + rb"+(?:[ \t]+" + _FIELD_VCHAR + rb"+)*)?[ \t]*"
)
"""A trailer line: a header field as h11 accepts one (RFC 9110 field syntax, any byte but NUL and
whitespace as a visible character)."""

_BLANK_LINE = re.compile(rb"\n\r?\n")
_FOLD = re.compile(rb"[ \t]+")

_EOF_CHUNKED = "peer closed connection without sending complete message body (incomplete chunked read)"


class BodyDecoder:
    """Body bytes out of the bytes of a connection, read by read."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        """The body ended: what follows it on the connection is not the body's (and is not read)."""
        self.error: str | None = None
        """The body is broken: what is wrong, once ``feed`` or ``end`` found it."""

    @property
    def finished(self) -> bool:
        """Done or broken: one check per read for the caller."""
        return self.done or self.error is not None

    def feed(self, data: bytes) -> bytes:
        """The body bytes in `data`, up to the body's end or a fault."""
        raise NotImplementedError

    def end(self) -> None:
        """The connection closed: the body ends here, or (`error`) it was cut short."""
        raise NotImplementedError


class LengthBody(BodyDecoder):
    """A body of ``Content-Length`` bytes."""

    __slots__ = ("_left", "_length")

    def __init__(self, length: int) -> None:
        super().__init__()
        self._length = length
        self._left = length
        self.done = length == 0

    def feed(self, data: bytes) -> bytes:
        if self.finished:
            return b""
        if len(data) >= self._left:
            data = data[: self._left]
            self._left = 0
            self.done = True
            return data
        self._left -= len(data)
        return data

    def end(self) -> None:
        if not self.finished:
            self.error = (
                "peer closed connection without sending complete message body "
                f"(received {self._length - self._left} bytes, expected {self._length})"
            )


class UntilCloseBody(BodyDecoder):
    """A body with neither length nor chunks: it ends when the connection closes."""

    __slots__ = ()

    def feed(self, data: bytes) -> bytes:
        return b"" if self.finished else data

    def end(self) -> None:
        if not self.finished:
            self.done = True


class ChunkedBody(BodyDecoder):
    """A ``Transfer-Encoding: chunked`` body. Chunk extensions and trailers are checked, then dropped."""

    __slots__ = ("_crlf", "_left", "_pending", "_trailers")

    def __init__(self) -> None:
        super().__init__()
        self._pending = b""
        """Unparsed bytes: the start of a chunk header or of the trailer section."""
        self._left = 0
        """Data bytes still to come in the current chunk."""
        self._crlf = 0
        """Bytes of the CRLF after a chunk's data still to come (2, 1 or 0)."""
        self._trailers = False
        """The last chunk was read: only the trailer section is left."""

    def feed(self, data: bytes) -> bytes:
        if self.finished:
            return b""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        parts: list[bytes] = []
        pos, size = 0, len(data)
        while pos < size:
            if self._left:
                end = pos + self._left
                if end > size:
                    parts.append(data[pos:])
                    self._left = end - size
                    break
                parts.append(data[pos:end])
                self._left = 0
                self._crlf = 2
                pos = end
            elif self._crlf:
                expected = b"\r\n"[2 - self._crlf :]
                got = data[pos : pos + len(expected)]
                if got != expected[: len(got)]:
                    self.error = f"malformed chunk footer: {got!r} (expected {expected!r})"
                    break
                self._crlf -= len(got)
                pos += len(got)
            elif self._trailers:
                pos = self._read_trailers(data, pos)
                break
            else:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self._keep(data, pos)
                    break
                header = _CHUNK_HEADER.fullmatch(data, pos, eol + 2)
                if header is None:
                    self.error = f"illegal chunk header: {data[pos : eol + 2]!r}"
                    break
                self._left = int(header[1], 16)
                self._trailers = self._left == 0
                pos = eol + 2
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def _keep(self, data: bytes, pos: int) -> None:
        """Hold an unfinished header or trailer section for the next read, unless it is already too long."""
        self._pending = data[pos:]
        if len(self._pending) > MAX_LINE:
            self.error = "Receive buffer too long"

    def _read_trailers(self, data: bytes, pos: int) -> int:
        """Read the trailer section from `pos`, if it is all there; where reading stopped."""
        if data.startswith((b"\n", b"\r\n"), pos):
            self.done = True
            return pos
        blank = _BLANK_LINE.search(data, pos)
        if blank is None:
            self._keep(data, pos)
            return len(data)
        lines = data[pos : blank.start() + 1].split(b"\n")[:-1]
        fields: list[bytes] = []
        for line in lines:
            line = line.removesuffix(b"\r")
            fold = _FOLD.match(line)  # an obsolete line folding: the line continues the previous field
            if fold is None:
                fields.append(line)
            elif fields:
                fields[-1] += b" " + line[fold.end() :]
            else:
                self.error = "continuation line at start of headers"
                return blank.end()
        for field in fields:
            if _TRAILER_FIELD.fullmatch(field) is None:
                self.error = f"illegal header line: {field!r}"
                return blank.end()
        self.done = True
        return blank.end()

    def end(self) -> None:
        if not self.finished:
            self.error = _EOF_CHUNKED


def body_decoder(method: str, status: int, headers: list[tuple[bytes, bytes]]) -> BodyDecoder:
    """How the body of a response to `method` with `status` and `headers` (as h11 validated them) is framed.

    RFC 9112 section 6.3, as h11 applies it: no body for 204, 304 or HEAD; chunked beats a length;
    a response with neither runs until the connection closes.
    """
    if status in (204, 304) or method == "HEAD":
        return LengthBody(0)
    length: int | None = None
    for name, value in headers:
        if name == b"transfer-encoding":  # h11 lowercases names and accepts "chunked" as the only coding
            return ChunkedBody()
        if name == b"content-length" and length is None:
            length = int(value)
    return UntilCloseBody() if length is None else LengthBody(length)
