"""A redacted record of one conversation with an engine: every request, response head and received frame.

One JSON object per entry, with ``t`` on the monotonic clock, so a vendor can
see exactly what their server sent and when. Every entry passes through the
adapter's Redactor before it is kept: a transcript is an artifact like any other.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ._redact import Redactor

__all__ = ["Transcript"]

_MAX_BODY_CHARS = 16 * 1024


class Transcript:
    __slots__ = ("_entries", "redact")

    def __init__(self, redact: Redactor | None = None) -> None:
        self.redact = redact or Redactor()
        self._entries: list[str] = []

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, kind: str, **fields: Any) -> None:
        entry = {"t": round(time.monotonic(), 6), "kind": kind, **fields}
        self._entries.append(self.redact(json.dumps(entry, ensure_ascii=False, default=str)))

    def request(self, method: str, url: str, body: Any) -> None:
        self.record("request", method=method, url=url, body=body)

    def response(self, status: int, headers: dict[str, str]) -> None:
        self.record("response", status=status, headers=self.redact.headers(headers))

    def body(self, text: str) -> None:
        self.record("body", text=text[:_MAX_BODY_CHARS], truncated=len(text) > _MAX_BODY_CHARS)

    def frame(self, data: str) -> None:
        self.record("frame", data=data[:_MAX_BODY_CHARS])

    def to_ndjson(self) -> str:
        return "".join(entry + "\n" for entry in self._entries)

    def drain(self) -> str:
        """What `to_ndjson` gives, then forget it: a long run keeps a transcript a piece at a time."""
        text = self.to_ndjson()
        self._entries.clear()
        return text
