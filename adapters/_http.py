"""The one HTTP layer every engine module uses.

- explicit timeouts (connect, total deadline, inter-chunk idle), enforced with
  asyncio timers so that each expiry maps to its own error kind;
- TLS verification on unless the caller turns it off;
- auth headers injected per request, never read from the environment here;
- every error message redacted;
- retries with full-jitter exponential backoff, honouring ``retry-after`` and
  ``retry-after-ms``, only before the first byte of a response body.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import random
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import httpx
import msgspec

from ._network import ARRIVED_AT, AsyncioTransport
from ._own_connection import OwnConnections, OwnResponse
from ._redact import Redactor
from ._transcript import Transcript
from ._watchdog import Watchdog
from .errors import ErrorKind, WorkerError

__all__ = [
    "Deadline",
    "ErrorClassifier",
    "ErrorDescriber",
    "HttpClient",
    "HttpReply",
    "RetryPolicy",
    "StreamResponse",
    "Timeouts",
    "classify_status",
    "default_describer",
]

T = TypeVar("T")

_MAX_ERROR_BODY = 64 * 1024
_LOAD_WORDS = ("busy", "overload", "capacity", "slow down", "too many")


def _user_agent() -> str:
    try:
        return f"conform/{importlib.metadata.version('conform')}"
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "conform"


_STREAM_HEADERS = {"Accept": "*/*", "Accept-Encoding": "identity"}
"""Headers of every streamed request: an encoded stream would be held back by the encoder, and its times
with it."""

Response = httpx.Response | OwnResponse
"""A response through httpx (a transport of the caller's), or on a connection of its own (`_own_connection`)."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """connect: TCP/TLS setup; total: whole request incl. stream; idle: gap between body chunks."""

    connect: float = 5.0
    total: float = 30.0
    idle: float = 30.0

    def __repr__(self) -> str:
        return f"Timeouts(connect={self.connect}, total={self.total}, idle={self.idle})"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base: float = 0.1
    factor: float = 2.0
    cap: float = 2.0
    seed: int | None = None
    """Seed for the jitter source, so retry timing is reproducible in tests."""

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls(attempts=1)


@dataclass(slots=True)
class Deadline:
    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(asyncio.get_running_loop().time() + seconds)

    def remaining(self) -> float:
        return self.at - asyncio.get_running_loop().time()


ErrorDescriber = Callable[[int, Any], str]
"""Engine hook: (status, parsed body or text) -> the engine's own error message."""

ErrorClassifier = Callable[[int, Any, str], ErrorKind]
"""Engine hook: (status, parsed body or text, message) -> the kind; engines whose body names the class use it."""


def default_describer(status: int, body: Any) -> str:
    """The message of ``{"error": {"message": ...}}``, ``{"error": "..."}`` or a text body."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message", error))
        return str(error)
    return str(body)[:500] if body else f"HTTP {status}"


def classify_status(status: int, message: str) -> ErrorKind:
    """Map an HTTP error status (and, for 503, the wording) onto the taxonomy."""
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status == 529:
        return ErrorKind.OVERLOADED
    if status == 503:
        lowered = message.lower()
        return ErrorKind.OVERLOADED if any(w in lowered for w in _LOAD_WORDS) else ErrorKind.UPSTREAM_UNAVAILABLE
    if status in (408, 409, 502, 504):
        return ErrorKind.UPSTREAM_UNAVAILABLE
    if status == 501 or 400 <= status < 500:
        return ErrorKind.INVALID_REQUEST
    return ErrorKind.ENGINE_ERROR


def _classify_by_status(status: int, _body: Any, message: str) -> ErrorKind:
    return classify_status(status, message)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000.0)
    seconds = headers.get("retry-after")
    if seconds is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(seconds))
    return None


@dataclass(slots=True)
class HttpReply:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    def json_or_text(self) -> Any:
        """The parsed JSON body, or the body as text when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION,
                f"{self.url} answered {self.status} with a body that is not JSON: {exc}",
                status=self.status,
            ) from None


class _SendClock:
    """When a request's first byte went to the connection (monotonic seconds), from httpx's trace hook.

    Stamping before ``send`` would count the connection pool, the TCP connect and
    the client's own event-loop backlog as engine latency; under a burst of
    concurrent requests those are most of a small time to first token. A
    transport that does not trace (a mock) leaves the stamp taken before ``send``.
    """

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = time.monotonic()

    async def trace(self, event: str, info: Any) -> None:
        if event.endswith(".send_request_headers.started"):
            self.at = time.monotonic()


@dataclass(slots=True)
class StreamResponse:
    """A response whose headers arrived with a 2xx status; the body is read chunk by chunk."""

    status: int
    headers: httpx.Headers
    url: str
    sent_at: float
    """When the request that this answers was written to the connection (monotonic seconds)."""
    _response: Response
    _deadline: Deadline
    _idle: float
    _redact: Redactor
    _network: Any = field(init=False)
    """The connection's network stream, which knows when each read's bytes arrived (if it is ours)."""

    def __post_init__(self) -> None:
        response = self._response
        self._network = (
            response.network if isinstance(response, OwnResponse) else response.extensions.get("network_stream")
        )

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", "")).split(";")[0].strip().lower()

    def arrived_at(self) -> float:
        """When the bytes of the chunk just read arrived: from the socket layer, where it records that
        (the kernel's receive stamp, or when the bytes reached the process), so that neither parsing
        nor a busy event loop delays the stamp; else now."""
        network = self._network
        at = network.get_extra_info(ARRIVED_AT) if network is not None else None
        return at if isinstance(at, float) else time.monotonic()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks; raises decode_timeout, deadline_unmet or worker_reset. The task that iterates it is
        the one its limits cancel (and turn into those errors)."""
        watchdog = Watchdog(self._idle, self._deadline.at)
        iterator = cast(AsyncGenerator[bytes, None], self._response.aiter_bytes())
        try:
            async with contextlib.aclosing(iterator):
                while True:
                    watchdog.waiting()
                    try:
                        chunk = await anext(iterator)
                    except StopAsyncIteration:
                        return
                    except asyncio.CancelledError:
                        if watchdog.expired():
                            raise self._timeout_error(watchdog.idle_expired) from None
                        raise
                    except httpx.HTTPError as exc:
                        raise WorkerError(
                            ErrorKind.WORKER_RESET,
                            self._redact(f"connection to {self.url} broke mid-stream: {_describe_exc(exc)}"),
                            status=self.status,
                            in_stream=True,
                        ) from None
                    watchdog.done_waiting()
                    yield chunk
        finally:
            watchdog.close()

    def _timeout_error(self, idle_expired: bool) -> WorkerError:
        if idle_expired:
            return WorkerError(
                ErrorKind.DECODE_TIMEOUT,
                f"no data from {self.url} for {self._idle:g} s after the stream started",
                status=self.status,
                in_stream=True,
            )
        return WorkerError(
            ErrorKind.DEADLINE_UNMET,
            f"{self.url} did not finish the stream within the total deadline",
            status=self.status,
            in_stream=True,
        )

    async def aclose(self) -> None:
        await _close_response(self._response)


_CLOSED_BODY = httpx.ByteStream(b"")


async def _close_response(response: Response) -> None:
    """Close a response, and let go of an httpx body stream: it refers back to the response.

    That cycle would leave every finished response, and the whole connection it came on, to the
    garbage collector; with one connection per stream, a collection of them took over 10 ms, and
    stopped every other stream for as long.
    """
    await response.aclose()
    if isinstance(response, httpx.Response):
        response.stream = _CLOSED_BODY


def _describe_exc(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HttpClient:
    """One httpx.AsyncClient per adapter, with the policies above."""

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        auth_headers: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
        describe_error: ErrorDescriber = default_describer,
        classify_error: ErrorClassifier | None = None,
        transcript: Transcript | None = None,
        max_connections: int = 512,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self.retry = retry
        self._auth_headers = dict(auth_headers or {})
        self._redact = (redactor or Redactor()).with_secrets(self._secret_values(self._auth_headers))
        self._describe_error = describe_error
        self._classify_error: ErrorClassifier = classify_error or _classify_by_status
        self.transcript = transcript
        self._rng = random.Random(retry.seed)
        verify_arg: bool | ssl.SSLContext = (
            verify if isinstance(verify, bool) else ssl.create_default_context(cafile=verify)
        )
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=64)
        user_agent = {"User-Agent": _user_agent()}
        own_transport = AsyncioTransport(verify=verify_arg, limits=limits) if transport is None else None
        self._own: OwnConnections | None = None
        """Where streams go, unless the caller gave a transport (then they go through it, with the rest)."""
        if own_transport is not None:
            self._own = OwnConnections(
                own_transport.backend,
                own_transport.ssl_context,
                {**user_agent, **_STREAM_HEADERS, **self._auth_headers},
                connect_timeout=timeouts.connect,
                write_timeout=timeouts.idle,
            )
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=user_agent,
            timeout=httpx.Timeout(connect=timeouts.connect, read=None, write=timeouts.idle, pool=timeouts.total),
            transport=transport or own_transport,
            follow_redirects=False,
            trust_env=False,
        )

    @staticmethod
    def _secret_values(headers: Mapping[str, str]) -> list[str]:
        values: list[str] = []
        for value in headers.values():
            values.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic"):
                values.append(token)
        return values

    @property
    def redact(self) -> Redactor:
        return self._redact

    async def aclose(self) -> None:
        if self._own is not None:
            await self._own.aclose()
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        ok_statuses: frozenset[int] | None = None,
        retry: bool = True,
    ) -> HttpReply:
        """A whole request within the total deadline. Non-2xx raises unless listed in ok_statuses."""
        deadline = Deadline.after(self.timeouts.total)
        return await self._with_retries(
            lambda: self._request_once(method, path, json_body, deadline, ok_statuses), deadline, retry
        )

    async def _request_once(
        self, method: str, path: str, json_body: Any, deadline: Deadline, ok_statuses: frozenset[int] | None
    ) -> HttpReply:
        url = self.base_url + path
        response, _ = await self._send(method, path, json_body, deadline)
        try:
            body = await self._read_body(response, deadline, url)
        finally:
            await _close_response(response)
        if self.transcript is not None:
            self.transcript.body(body.decode("utf-8", "replace"))
        if response.is_success or (ok_statuses is not None and response.status_code in ok_statuses):
            return HttpReply(response.status_code, response.headers, body, url)
        raise self._status_error(response.status_code, response.headers, body, url)

    @contextlib.asynccontextmanager
    async def open_stream(self, method: str, path: str, *, json_body: Any = None) -> AsyncIterator[StreamResponse]:
        """Open a streamed response; retries apply until the response headers arrive with a 2xx status."""
        deadline = Deadline.after(self.timeouts.total)
        url = self.base_url + path
        response, sent_at = await self._with_retries(
            lambda: self._open_once(method, path, json_body, deadline), deadline, retry=True
        )
        try:
            yield StreamResponse(
                response.status_code,
                response.headers,
                url,
                sent_at,
                response,
                deadline,
                self.timeouts.idle,
                self._redact,
            )
        finally:
            await _close_response(response)

    async def _open_once(self, method: str, path: str, json_body: Any, deadline: Deadline) -> tuple[Response, float]:
        """A response with a 2xx status, still open for streaming, and when its request was sent;
        any other status becomes a WorkerError."""
        response, sent_at = await self._send(method, path, json_body, deadline, stream=True)
        url = self.base_url + path
        if response.is_success:
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if isinstance(response, OwnResponse) and encoding != "identity":
                await _close_response(response)
                raise WorkerError(
                    ErrorKind.PROTOCOL_VIOLATION,
                    f"{url} streamed with content encoding {encoding!r}, although the request asked for identity",
                    status=response.status_code,
                )
            return response, sent_at
        try:
            body = await self._read_body(response, deadline, url)
        finally:
            await _close_response(response)
        if self.transcript is not None:
            self.transcript.body(body.decode("utf-8", "replace"))
        raise self._status_error(response.status_code, response.headers, body, url)

    async def _send(
        self, method: str, path: str, json_body: Any, deadline: Deadline, *, stream: bool = False
    ) -> tuple[Response, float]:
        """Send and wait for the response headers: the response, which the caller owns (and must close),
        and when the request was written to the connection. A stream goes on a connection of its own,
        which closes with it (a cancel closes it early, and the engine sees that), unless the caller gave
        a transport."""
        url = self.base_url + path
        if self.transcript is not None:
            self.transcript.request(method, url, json_body)
        try:
            async with asyncio.timeout_at(deadline.at):
                response: Response
                if stream and self._own is not None:
                    body = b"" if json_body is None else msgspec.json.encode(json_body)
                    response = await self._own.open(method, url, "application/json", body)
                    sent_at = response.sent_at
                else:
                    response, sent_at = await self._send_through_httpx(method, path, json_body)
            if self.transcript is not None:
                self.transcript.response(response.status_code, dict(response.headers))
            return response, sent_at
        except TimeoutError:
            raise WorkerError(
                ErrorKind.DEADLINE_UNMET, f"{method} {url} got no response headers within the total deadline"
            ) from None
        except httpx.ConnectTimeout:
            raise WorkerError(
                ErrorKind.UPSTREAM_UNAVAILABLE,
                f"could not connect to {self._redact(url)} within {self.timeouts.connect:g} s",
            ) from None
        except httpx.HTTPError as exc:
            raise WorkerError(
                ErrorKind.UPSTREAM_UNAVAILABLE,
                self._redact(f"{method} {url} failed before a response: {_describe_exc(exc)}"),
            ) from None

    async def _send_through_httpx(self, method: str, path: str, json_body: Any) -> tuple[httpx.Response, float]:
        clock = _SendClock()
        request = self._client.build_request(
            method, path, json=json_body, headers=self._auth_headers, extensions={"trace": clock.trace}
        )
        response = await self._client.send(request, stream=True)
        return response, clock.at

    async def _read_body(self, response: Response, deadline: Deadline, url: str) -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout_at(deadline.at):
                async for chunk in response.aiter_bytes():
                    parts.append(chunk)
                    size += len(chunk)
                    if size > _MAX_ERROR_BODY and not response.is_success:
                        break
        except TimeoutError:
            raise WorkerError(
                ErrorKind.DEADLINE_UNMET,
                f"{url} did not finish its response body within the total deadline",
                status=response.status_code,
            ) from None
        except httpx.HTTPError as exc:
            raise WorkerError(
                ErrorKind.WORKER_RESET,
                self._redact(f"connection to {url} broke while reading the body: {_describe_exc(exc)}"),
                status=response.status_code,
            ) from None
        return b"".join(parts)

    def _status_error(self, status: int, headers: httpx.Headers, body: bytes, url: str) -> WorkerError:
        text = body.decode("utf-8", "replace")
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text.strip()
        message = self._describe_error(status, parsed)
        kind = self._classify_error(status, parsed, message)
        return WorkerError(
            kind,
            self._redact(f"{url} answered {status}: {message}"),
            status=status,
            retry_after=parse_retry_after(headers),
        )

    async def _with_retries(self, attempt: Callable[[], Awaitable[T]], deadline: Deadline, retry: bool) -> T:
        """Run attempt() until it succeeds, fails for good, or the deadline leaves no room for a backoff."""
        attempts = self.retry.attempts if retry else 1
        for number in range(attempts):
            try:
                return await attempt()
            except WorkerError as error:
                if not error.retriable or number + 1 >= attempts:
                    raise
                delay = self._backoff(number, error.retry_after)
                if delay >= deadline.remaining():
                    raise
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _backoff(self, number: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        ceiling = min(self.retry.cap, self.retry.base * self.retry.factor**number)
        return self._rng.uniform(0.0, ceiling)
