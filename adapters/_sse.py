"""Incremental Server-Sent Events decoder (WHATWG HTML §9.2.5–9.2.6).

Bytes in, events out, on any chunk boundary:

- lines end at CR, LF or CRLF only (never U+2028 and friends), and a CR that
  ends one chunk followed by an LF that starts the next is one line end;
- one leading BOM is dropped; comments (``:``) are counted, not dispatched;
- ``data`` lines join with LF; ``field:value`` loses exactly one leading space;
- an ``id`` persists across events; ``retry`` takes ASCII digits only;
- an event whose blank line never arrived is not dispatched (see ``pending``).

A line or event larger than ``max_event_bytes`` raises SSEError instead of
buffering without bound.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEError", "SSEEvent"]

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024

_BOM = "\ufeff"
_new_event = tuple.__new__


class SSEError(ValueError):
    """The byte stream cannot be SSE (today: a frame over the size limit)."""


class SSEEvent(NamedTuple):
    """One dispatched event. A NamedTuple: millions are made per second, and they never change."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    __slots__ = (
        "_buffer",
        "_data",
        "_event",
        "_last_id",
        "_max",
        "_retry",
        "_skip_lf",
        "_started",
        "_strict",
        "comments",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, *, strict_utf8: bool = False) -> None:
        """`strict_utf8`: bytes that are not UTF-8 raise SSEError (the standard replaces them with U+FFFD;
        an engine's JSON must be UTF-8, so the adapters ask for strict)."""
        self._max = max_event_bytes
        self._strict = strict_utf8
        self._buffer = b""
        self._skip_lf = False
        self._started = False
        self._event = ""
        self._data: list[str] | None = None
        """Data lines of the event being read; None until its first data line."""
        self._last_id: str | None = None
        self._retry: int | None = None
        self.comments = 0
        """How many comment lines (keep-alives) were seen."""

    @property
    def pending(self) -> bool:
        """True when bytes or fields of an event are buffered that no blank line has closed yet."""
        return bool(self._buffer) or self._data is not None or bool(self._event)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events that this chunk completes."""
        text = self._complete_lines(chunk)
        return self._blocks(text) if text else []

    def feed_data(self, chunk: bytes) -> list[str]:
        """The data of each event that this chunk completes, for a reader that needs nothing else of an event
        (not its type, id or retry): a read of plain data events is cut into its data by one split, and no
        event object is made for them. The same decoding as `feed` in every other respect."""
        text = self._complete_lines(chunk)
        if not text:
            return []
        plain = self._plain_data(text)
        if plain is None:
            return [event.data for event in self._blocks(text)]
        values, end = plain
        if end < len(text):
            self._lines(text[end:].split("\n")[:-1])  # an event begun, not finished: none is dispatched
        return values

    def _complete_lines(self, chunk: bytes) -> str:
        """The complete lines that the buffer and this chunk make, decoded, with every line ended by LF;
        what follows the last line end is kept for the next chunk."""
        if not chunk:
            return ""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return ""
        buffer = self._buffer + chunk if self._buffer else chunk
        end = max(buffer.rfind(b"\n"), buffer.rfind(b"\r"))
        if end < 0:
            if len(buffer) > self._max:
                raise SSEError(f"SSE line exceeds {self._max} bytes without a line end")
            self._buffer = buffer
            return ""
        self._buffer = buffer[end + 1 :]
        if len(self._buffer) > self._max:
            raise SSEError(f"SSE line exceeds {self._max} bytes without a line end")
        # Complete lines only: a multi-byte character never contains CR or LF bytes, so one
        # decode of all of them equals a decode per line.
        try:
            text = buffer[: end + 1].decode("utf-8", "strict" if self._strict else "replace")
        except UnicodeDecodeError as exc:
            raise SSEError(
                f"the stream is not UTF-8: byte {exc.object[exc.start]:#04x} cannot start or continue a character"
            ) from None
        if "\r" in text:
            if text[-1] == "\r":
                # A CR at the very end may be the first half of a CRLF split across reads.
                self._skip_lf = True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if not self._started:
            self._started = True
            if text.startswith(_BOM):
                text = text[1:]
        return text

    def _plain_data(self, text: str) -> tuple[list[str], int] | None:
        """The reads of a token stream: one-line ``data: `` events, perhaps the start of the next. Their data,
        and where the text after the last of them starts; None for any other read.

        One split cuts the events out; the count of line ends proves that none of
        them had a second line or another field.
        """
        end = text.rfind("\n\n") + 2
        if end > 2 and text.startswith("data: ") and self._data is None and not self._event:
            values = text[6 : end - 2].split("\n\ndata: ")
            if text.count("\n", 0, end) == 2 * len(values):
                return values, end
        return None

    def _blocks(self, text: str) -> list[SSEEvent]:
        """Events from complete lines, one blank-line-separated block at a time.

        Nearly every event on the wire is one ``data:`` line and a blank line; a read
        of nothing else is cut into events by one split (`_plain_data`), and such a
        block among others becomes an event with one check and one slice. Anything
        else (other fields, several data lines, an event begun in an earlier read)
        takes the general line-by-line path, which the fast paths must always agree with.
        """
        plain = self._plain_data(text)
        if plain is not None:
            values, end = plain
            last_id, retry = self._last_id, self._retry
            cut = [_new_event(SSEEvent, ("message", value, last_id, retry)) for value in values]
            if end < len(text):
                cut += self._lines(text[end:].split("\n")[:-1])
            return cut
        blocks = text.split("\n\n")
        tail = blocks.pop()  # lines after the last blank line: an event still open (or "")
        events: list[SSEEvent] = []
        if blocks and (self._data is not None or self._event):
            # An event begun in an earlier read: finish it the general way.
            events += self._lines([*blocks[0].split("\n"), ""])
            del blocks[0]
        append = events.append
        last_id, retry = self._last_id, self._retry
        for block in blocks:
            # No `event:` can be pending here: each block ends with the blank line that resets it.
            if block.startswith("data:") and "\n" not in block:
                # tuple.__new__ skips NamedTuple's Python-level __new__: this line runs once per token.
                append(_new_event(SSEEvent, ("message", block[6:] if block[5:6] == " " else block[5:], last_id, retry)))
            elif block:
                events += self._lines([*block.split("\n"), ""])
                last_id, retry = self._last_id, self._retry
        if tail:
            events += self._lines(tail.split("\n")[:-1])
        return events

    def _lines(self, lines: list[str]) -> list[SSEEvent]:
        # The general path (see _blocks): state lives in locals and is written back once.
        events: list[SSEEvent] = []
        data = self._data
        event_type = self._event
        for line in lines:
            if not line:
                if data is not None:
                    joined = data[0] if len(data) == 1 else "\n".join(data)
                    events.append(SSEEvent(event_type or "message", joined, self._last_id, self._retry))
                    data = None
                event_type = ""
            elif line.startswith("data:"):
                value = line[6:] if line[5:6] == " " else line[5:]
                if data is None:
                    data = [value]
                else:
                    data.append(value)
            elif line[0] == ":":
                self.comments += 1
            else:
                self._data, self._event = data, event_type
                self._other_field(line)
                data, event_type = self._data, self._event
        self._data, self._event = data, event_type
        if data is not None and sum(map(len, data)) + len(data) > self._max:
            # Checked once per read: an event that never ends must not grow without bound.
            raise SSEError(f"SSE event data exceeds {self._max} bytes")
        return events

    def _other_field(self, line: str) -> None:
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":  # a bare `data` line: an empty data value
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._last_id = value or None
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
