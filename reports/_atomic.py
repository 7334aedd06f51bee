"""Atomic file writes: a reader (or an interrupted run) never sees half a file."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

__all__ = ["STDOUT", "UnwritablePath", "atomic_writer", "check_writable", "write_atomic"]

STDOUT = Path("-")
"""The path that means standard output, as a command line writes it."""


class UnwritablePath(ValueError):
    """A place the user asked for output cannot be written; the message names the option and the path."""


def check_writable(path: Path, option: str, *, folder: bool = False) -> None:
    """Raise UnwritablePath unless a file (or, with `folder`, a folder of files) can be written at `path`:
    the user's mistake is told before any work, not after. Tried, not guessed from permission bits (which
    root ignores, and a read-only file system does not)."""
    path = Path(path)
    if path == STDOUT and not folder:
        return
    if path.exists() and (path.is_dir() != folder):
        kind = "a folder" if path.is_dir() else "a file"
        raise UnwritablePath(f"{option} {path}: is {kind}, not {'a folder' if folder else 'a file'}")
    if path.exists() and not folder and not stat.S_ISREG(path.stat().st_mode):
        return  # a device or a pipe (/dev/stdout, a FIFO): written in place
    probe_in = path if folder and path.exists() else path.parent
    existing = next(p for p in (probe_in, *probe_in.parents) if p.exists())
    if not existing.is_dir():
        raise UnwritablePath(f"{option} {path}: {existing} is a file, so nothing can be written below it")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UnwritablePath(f"{option} {path}: cannot write in {existing}: {error.strerror}") from None


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[TextIO]:
    """A text file written a piece at a time that appears at `path` whole, when the block ends without an
    error; until then (and after an error) the path is untouched. ``-`` is standard output, and a path that
    is a device or a pipe (``/dev/stdout``) is written in place: replacing it would replace the device."""
    path = Path(path)
    if path == STDOUT:
        yield sys.stdout
        sys.stdout.flush()
        return
    if path.exists() and not stat.S_ISREG(path.stat().st_mode) and not path.is_dir():
        with path.open("w", encoding="utf-8") as handle:
            yield handle
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; a report is an artifact people share and CI uploads.
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, text: str) -> None:
    with atomic_writer(path) as handle:
        handle.write(text)
