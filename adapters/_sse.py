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

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEError", "SSEEvent"]

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024

_BOM = "\ufeff"


class SSEError(ValueError):
    """The byte stream cannot be SSE (today: a frame over the size limit)."""


@dataclass(slots=True, frozen=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    __slots__ = (
        "_buffer",
        "_data",
        "_data_size",
        "_event",
        "_has_data",
        "_last_id",
        "_max",
        "_retry",
        "_skip_lf",
        "_started",
        "comments",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buffer = b""
        self._skip_lf = False
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._data_size = 0
        self._has_data = False
        self._last_id: str | None = None
        self._retry: int | None = None
        self.comments = 0
        """How many comment lines (keep-alives) were seen."""

    @property
    def pending(self) -> bool:
        """True when bytes or fields of an event are buffered that no blank line has closed yet."""
        return bool(self._buffer) or self._has_data or bool(self._event)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buffer = self._buffer + chunk if self._buffer else chunk
        lines = buffer.splitlines(keepends=True)
        if not lines:
            self._buffer = b""
            return []
        last = lines[-1]
        if last[-1:] in (b"\n", b"\r"):
            self._buffer = b""
            if last[-1:] == b"\r":
                # A CR at the very end may be the first half of a CRLF split across chunks.
                self._skip_lf = True
        else:
            self._buffer = last
            lines.pop()
            if len(last) > self._max:
                raise SSEError(f"SSE line exceeds {self._max} bytes without a line end")
        events: list[SSEEvent] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            if not self._started:
                self._started = True
                if line.startswith(_BOM):
                    line = line[1:]
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            else:
                self._process_line(line)
        return events

    def _process_line(self, line: str) -> None:
        if line[0] == ":":
            self.comments += 1
            return
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                raise SSEError(f"SSE event data exceeds {self._max} bytes")
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._last_id = value or None
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_data:
            self._event = ""
            return None
        event = SSEEvent(self._event or "message", "\n".join(self._data), self._last_id, self._retry)
        self._data = []
        self._data_size = 0
        self._has_data = False
        self._event = ""
        return event
