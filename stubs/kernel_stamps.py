"""Receive times from the kernel: when bytes reached this host, not when a process woke up to read them.

On Linux a socket with ``SO_TIMESTAMPNS`` on has each read (``recvmsg``)
carry the time the kernel received the newest of its bytes. The harness's
connections stamp tokens with it, and the stub's server stamps the arrival of
requests with it, so that neither side's late wake-up (a busy event loop, a
vCPU the hypervisor has not yet run) moves a time it reports. Elsewhere, or
where the option is refused, a read is stamped when it is made.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import time

__all__ = ["ANCILLARY_SIZE", "KERNEL_STAMPS", "kernel_arrival", "receive", "stamp_receives"]

KERNEL_STAMPS = sys.platform == "linux"
"""Whether this system stamps receives (the option below is Linux's)."""

_SO_TIMESTAMPNS = 35
"""``SO_TIMESTAMPNS_OLD`` (<asm-generic/socket.h>), also its control message's type; Python does not name it."""

_TIMESPEC = struct.Struct("@ll")
"""``struct timespec`` of the old option: seconds and nanoseconds of the realtime clock, both C longs."""

ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
"""The ``ancbufsize`` of a ``recvmsg`` that takes the stamp."""

_MAX_STAMP_AGE_NS = 60 * 1_000_000_000
"""A kernel stamp older than this, or in the future, means the realtime clock was set meanwhile: not used."""


def stamp_receives(sock: socket.socket) -> None:
    """Ask the kernel to stamp what `sock` receives; a socket it accepts inherits the option.

    Where the kernel refuses (a sandbox's own network stack), reads go unstamped and
    `kernel_arrival` gives the time of the read.
    """
    if KERNEL_STAMPS:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)


def kernel_arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """When the kernel received the newest bytes of a read (monotonic seconds); now if it did not say.

    The kernel stamps with the realtime clock; the stamp's age, taken on that
    clock, is subtracted from the monotonic now. The realtime clock is read
    first: time that passes between the two readings then makes the age too
    short, and the arrival late by that much, never early (read the other way
    round, a stamp came out before the bytes were even sent).
    """
    realtime_ns = time.time_ns()
    now = time.monotonic()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            age_ns: int = realtime_ns - (seconds * 1_000_000_000 + nanoseconds)
            if 0 <= age_ns < _MAX_STAMP_AGE_NS:
                return now - age_ns / 1e9
    return now


def receive(sock: socket.socket, size: int) -> tuple[bytes, float]:
    """Up to `size` bytes from `sock`, and when the kernel received the newest of them (`kernel_arrival`)."""
    data, ancillary, _, _ = sock.recvmsg(size, ANCILLARY_SIZE)
    return data, kernel_arrival(ancillary)
