"""Servers the benchmarks measure, each in its own process (so client and server use both cores)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["FrameCounter", "peak_rss_mib", "serve"]


@contextlib.contextmanager
def serve(
    kind: str, script: dict[str, Any] | None = None, timeline: Path | None = None, engine: str = "llamacpp"
) -> Iterator[tuple[str, int]]:
    """(url, pid) of `conform stub ENGINE` (kind "stub") or of the plain aiohttp reference ("plain").

    With `timeline`, the stub writes there when it wrote each token, once it has stopped (on leaving).
    """
    with tempfile.TemporaryDirectory() as scratch:
        if kind == "stub":
            args = [sys.executable, "-m", "conform", "stub", engine, "--port", "0"]
            if script is not None:
                path = Path(scratch) / "script.json"
                path.write_text(json.dumps(script))
                args += ["--script", str(path)]
            if timeline is not None:
                args += ["--timeline", str(timeline)]
        else:
            args = [sys.executable, "-m", "benchmarks._plain_server"]
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
        )
        assert process.stdout is not None
        try:
            url = process.stdout.readline().strip()
            if not url.startswith("http://"):
                raise RuntimeError(f"{kind} server did not start (printed {url!r})")
            yield url, process.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
            process.stdout.close()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class FrameCounter:
    """Counts SSE frame ends (blank lines) in raw bytes, including a "\\n\\n" split across reads."""

    __slots__ = ("_last", "frames")

    def __init__(self) -> None:
        self.frames = 0
        self._last = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.frames += chunk.count(b"\n\n") + (self._last == b"\n" and chunk[:1] == b"\n")
        self._last = chunk[-1:]
