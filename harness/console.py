"""What a person reads: colour where a terminal shows it, and how much to say.

Colour follows the conventions users' tools share (https://no-color.org, pytest): on when the stream is a
terminal, off when it is piped or a file, off whenever ``NO_COLOR`` is set to anything, on whenever
``FORCE_COLOR`` is (a CI log viewer that renders ANSI), and never on a ``TERM=dumb`` terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

__all__ = ["QUIET", "VERBOSE", "Console", "Paint", "colour_wanted", "plain"]

QUIET, NORMAL, VERBOSE = -1, 0, 1

_CODES = {"passed": "32", "ok": "32", "failed": "31;1", "error": "31;1", "FAIL": "31;1", "skipped": "33", "skip": "33"}
"""ANSI colour per status word (green, bold red, yellow), as pytest paints them."""


Paint = Callable[[str, str], str]
"""Colours a text by a status word (`Console.paint`), or leaves it as it is (`plain`)."""


def plain(text: str, status: str) -> str:
    return text


def colour_wanted(stream: TextIO, environ: Mapping[str, str]) -> bool:
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    return stream.isatty() and environ.get("TERM") != "dumb"


@dataclass(frozen=True)
class Console:
    """Where output goes, whether it is a terminal, whether to colour it, and how much to say."""

    stream: TextIO
    colour: bool = False
    verbosity: int = NORMAL
    interactive: bool = False
    """A person watches this stream (a terminal): the whole matrix is worth printing."""

    @property
    def shows_all(self) -> bool:
        """Everything is worth printing (the matrix, a line per request): a person watches, or -v asked for it.
        Piped without -v, only what failed and the summary."""
        return self.interactive or self.verbosity >= VERBOSE

    @classmethod
    def of(cls, stream: TextIO, environ: Mapping[str, str], verbosity: int = NORMAL) -> Console:
        return cls(stream, colour_wanted(stream, environ), verbosity, stream.isatty())

    def paint(self, text: str, status: str) -> str:
        """`text` in the colour of `status` (passed, failed, error, skipped, ok, FAIL, skip), if colour is on."""
        code = _CODES.get(status)
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)
