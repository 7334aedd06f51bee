"""Progress of a long run on stderr: a live status line on a terminal, few plain lines anywhere else.

On a terminal, one line is redrawn in place with checks done / total and the
current target; every check that failed is printed above it for good. When
stderr is a pipe or a file (CI logs), each failed check is a line, and a line
marks every tenth of the run. Verbose, every finished check is a line, skipped
ones with their reason.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import TextIO

from conform.reports import CheckResult

from .console import Paint, plain

__all__ = ["Eta", "Progress"]

_CLEAR = "\r\x1b[2K"
_STEPS = 10
"""Lines that mark the run's progress in a log: one per tenth of the checks."""


class Progress:
    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool | None = None,
        verbose: bool = False,
        paint: Paint = plain,
    ) -> None:
        self._stream = stream
        self.live = stream.isatty() if live is None else live
        self.verbose = verbose
        self._paint = paint
        self.total: int | None = None
        self.done = 0
        self.failed = 0
        self._drawn = False

    def finished(self, result: CheckResult) -> None:
        self.done += 1
        bad = result.status in ("failed", "error")
        self.failed += bad
        counter = f"{self.done:>3}" + (f"/{self.total}" if self.total else "")
        detail = f" — {result.detail}" if result.detail and result.status != "passed" else ""
        status = self._paint(f"{result.status:<7}", result.status)
        line = f"[{counter}] {result.target or result.engine:<16} {status} {result.id}{detail}"
        if not self.live:
            if bad or self.verbose:
                self._write(line + "\n")
            elif self._milestone():
                self._write(
                    f"[{counter}] {self.done * 100 // (self.total or 1)}% of the checks done, {self.failed} failed\n"
                )
            return
        if bad or (self.verbose and result.status != "passed"):
            self._stream.write(_CLEAR + line + "\n")
        width = shutil.get_terminal_size((100, 20)).columns
        now = f"[{counter}] {result.target or result.engine} · {result.id}"
        self._write(_CLEAR + now[: max(10, width - 1)])
        self._drawn = True

    def _milestone(self) -> bool:
        """Whether this check ends a tenth of the run (never for a run of unknown size)."""
        if not self.total:
            return False
        return self.done * _STEPS // self.total != (self.done - 1) * _STEPS // self.total

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()

    def close(self) -> None:
        """Leave the terminal clean: the live line is erased (the summary follows it)."""
        if self.live and self._drawn:
            self._write(_CLEAR)
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
