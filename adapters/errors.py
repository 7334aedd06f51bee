"""One exception type for everything an adapter can see go wrong.

    WorkerError(kind, message, status=None, retry_after=None)
      kind                  retriable   seed variant      meaning
      invalid_request       no          Adapter           400/422, engine validation
      auth                  no          Adapter           401/403
      not_found             no          Adapter           unknown model or endpoint (404)
      rate_limited          yes         Adapter           429
      overloaded            yes         PoolUnavailable   503 with a load signal, 529
      upstream_unavailable  yes         PoolUnavailable   refused, DNS, 502/504, still loading
      deadline_unmet        no          DeadlineUnmet     total deadline passed
      decode_timeout        no          DecodeTimeout     idle too long after the stream started
      worker_reset          no          WorkerReset       connection reset/closed mid-stream
      engine_error          5xx before  Internal          500 or an error object in a stream
                            first byte
      protocol_violation    no          Adapter           malformed frame, bad JSON, grammar
      cancelled             no          -                 the caller cancelled

Only the HTTP layer and the engine modules raise it; every message is redacted
before it is stored, so a WorkerError can be printed anywhere.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorKind", "WorkerError"]


class ErrorKind(StrEnum):
    INVALID_REQUEST = "invalid_request"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    DEADLINE_UNMET = "deadline_unmet"
    DECODE_TIMEOUT = "decode_timeout"
    WORKER_RESET = "worker_reset"
    ENGINE_ERROR = "engine_error"
    PROTOCOL_VIOLATION = "protocol_violation"
    CANCELLED = "cancelled"

    @property
    def variant(self) -> str | None:
        """The original specification's coarse worker-error variant this kind belongs to."""
        return _VARIANTS[self]


_VARIANTS: dict[ErrorKind, str | None] = {
    ErrorKind.INVALID_REQUEST: "Adapter",
    ErrorKind.AUTH: "Adapter",
    ErrorKind.NOT_FOUND: "Adapter",
    ErrorKind.RATE_LIMITED: "Adapter",
    ErrorKind.OVERLOADED: "PoolUnavailable",
    ErrorKind.UPSTREAM_UNAVAILABLE: "PoolUnavailable",
    ErrorKind.DEADLINE_UNMET: "DeadlineUnmet",
    ErrorKind.DECODE_TIMEOUT: "DecodeTimeout",
    ErrorKind.WORKER_RESET: "WorkerReset",
    ErrorKind.ENGINE_ERROR: "Internal",
    ErrorKind.PROTOCOL_VIOLATION: "Adapter",
    ErrorKind.CANCELLED: None,
}

_ALWAYS_RETRIABLE = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED, ErrorKind.UPSTREAM_UNAVAILABLE})


class WorkerError(Exception):
    """A classified failure. `message` is already redacted.

    `in_stream` tells whether the stream had started (first byte of the body
    received) when the error happened: an engine error before that point may be
    retried, one inside a started stream never is.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        in_stream: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.in_stream = in_stream
        self.retry_after = retry_after

    @property
    def retriable(self) -> bool:
        if self.kind in _ALWAYS_RETRIABLE:
            return True
        return self.kind is ErrorKind.ENGINE_ERROR and not self.in_stream

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.kind.value}{status}: {self.message}"

    def __repr__(self) -> str:
        return f"WorkerError(kind={self.kind.value!r}, status={self.status!r}, message={self.message!r})"
