"""Incremental NDJSON line splitter: bytes in, complete lines out, on any chunk boundary.

A line ends at LF (a CR before it is dropped). A line split across chunks,
even inside a multi-byte UTF-8 character, is joined before it is decoded; a
line that is not UTF-8 or grows past ``max_line_bytes`` raises NDJSONError
instead of buffering without bound. A body that ends without a final LF
leaves ``pending`` true: the last object was cut off.
"""

from __future__ import annotations

__all__ = ["NDJSONDecoder", "NDJSONError"]


class NDJSONError(ValueError):
    """The byte stream cannot be NDJSON: a line over the size limit, or not UTF-8."""


class NDJSONDecoder:
    __slots__ = ("_buffer", "_max", "lines")

    def __init__(self, max_line_bytes: int = 4 * 1024 * 1024) -> None:
        self._max = max_line_bytes
        self._buffer = b""
        self.lines = 0
        """Complete lines decoded so far (for error messages)."""

    @property
    def pending(self) -> bool:
        return bool(self._buffer)

    def feed(self, chunk: bytes) -> list[str]:
        data = self._buffer + chunk if self._buffer else chunk
        parts = data.split(b"\n")
        self._buffer = parts.pop()
        if len(self._buffer) > self._max:
            raise NDJSONError(f"line {self.lines + 1} is over the limit of {self._max} bytes and still growing")
        lines: list[str] = []
        for raw in parts:
            self.lines += 1
            if len(raw) > self._max:
                raise NDJSONError(f"line {self.lines} is {len(raw)} bytes, over the limit of {self._max}")
            try:
                lines.append(raw.removesuffix(b"\r").decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise NDJSONError(f"line {self.lines} is not UTF-8 (byte {exc.start})") from None
        return lines
