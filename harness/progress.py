"""Progress of a long run on stderr: a live status line on a terminal, plain lines anywhere else.

On a terminal, one line is redrawn in place with checks done / total and the
current target; every check that did not pass is printed above it for good.
When stderr is a pipe or a file (CI logs), every finished check is one plain line.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import TextIO

from conform.reports import CheckResult

__all__ = ["Eta", "Progress"]

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


class Eta:
    """Done / total, elapsed and the time left at the pace so far, for a run of `total` equal-sized steps."""

    def __init__(self, total: int, clock: Callable[[], float]) -> None:
        self.total = total
        self._clock = clock
        self._began = clock()

    def line(self, done: int, what: str) -> str:
        elapsed = self._clock() - self._began
        left = elapsed / done * (self.total - done) if done else 0.0
        width = len(str(self.total))
        return f"[{done:>{width}}/{self.total}] {what} done; {_duration(elapsed)} elapsed, ETA {_duration(left)}"


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
