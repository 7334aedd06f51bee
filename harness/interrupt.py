"""Stopping a run on request: Ctrl-C at a terminal, SIGTERM from a CI cancel, alike.

The first signal only asks the run to stop: the running check finishes (bounded by its timeouts) and the
report is written, marked interrupted. Raising KeyboardInterrupt wherever a signal lands could leave a
scenario's event loop waiting on streams no one reads. A second signal quits at once, writing nothing
(never a half-written file).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["EXIT_INTERRUPTED", "StopRequest"]

EXIT_INTERRUPTED = 130
"""What a shell reports for a command ended by SIGINT, and what conform exits with when interrupted."""

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the first SIGINT or SIGTERM; `requested` is what the run polls between checks."""

    def __init__(self, on_request: Callable[[], None] | None = None, what: str = "the current check") -> None:
        self.requested = False
        self._on_request = on_request
        self._what = what

    def install(self) -> bool:
        """Handle SIGINT and SIGTERM from now on; False where signals cannot be handled (not the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in _SIGNALS:
            signal.signal(signum, self._on_signal)
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            os._exit(EXIT_INTERRUPTED)
        self.requested = True
        name = signal.Signals(signum).name
        print(
            f"conform: interrupted ({name}) — finishing {self._what}, then writing the report "
            f"({name} again to quit now)",
            file=sys.stderr,
            flush=True,
        )
        if self._on_request is not None:
            self._on_request()
