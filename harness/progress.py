"""Progress of a long run on stderr: a live status line on a terminal, plain lines anywhere else.

On a terminal, one line is redrawn in place with checks done / total and the
current target; every check that did not pass is printed above it for good.
When stderr is a pipe or a file (CI logs), every finished check is one plain line.
"""

from __future__ import annotations

import shutil
from typing import TextIO

from conform.reports import CheckResult

__all__ = ["Progress"]

_CLEAR = "\r\x1b[2K"


class Progress:
    def __init__(self, stream: TextIO, *, live: bool | None = None) -> None:
        self._stream = stream
        self.live = stream.isatty() if live is None else live
        self.total: int | None = None
        self.done = 0
        self._drawn = False

    def finished(self, result: CheckResult) -> None:
        self.done += 1
        counter = f"{self.done:>3}" + (f"/{self.total}" if self.total else "")
        detail = f" — {result.detail}" if result.detail and result.status != "passed" else ""
        line = f"[{counter}] {result.target or result.engine:<16} {result.status:<7} {result.id}{detail}"
        if not self.live:
            self._stream.write(line + "\n")
            self._stream.flush()
            return
        if result.status != "passed":
            self._stream.write(_CLEAR + line + "\n")
        width = shutil.get_terminal_size((100, 20)).columns
        status = f"[{counter}] {result.target or result.engine} · {result.id}"
        self._stream.write(_CLEAR + status[: max(10, width - 1)])
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Leave the terminal clean: the live line is erased (the summary follows it)."""
        if self.live and self._drawn:
            self._stream.write(_CLEAR)
            self._stream.flush()
            self._drawn = False
