"""The one HTTP layer every engine module uses, on aiohttp's client.

- explicit timeouts (connect, total deadline, inter-chunk idle), each expiry
  mapped to its own error kind;
- TLS verification on unless the caller turns it off, or a CA bundle of its own;
- an HTTP proxy where the caller names one (`ProxyConfig`; never read from the
  environment here);
- auth headers injected per request, never read from the environment here;
- every error message redacted;
- retries with full-jitter exponential backoff, honouring ``retry-after`` and
  ``retry-after-ms``, only before the first byte of a response body;
- redirects never followed nor retried: a 3xx is a failed request that names
  where it points, so a wrong URL or a gateway's redirect shows at once.

Why aiohttp's client rather than httpx (alone or over ``httpx-aiohttp``):
docs/architecture.md, "The HTTP path"; ``python -m benchmarks`` measures all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

import aiohttp
import msgspec

from ._proxy import ProxyConfig
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
_READ_SIZE = 64 * 1024
"""The most one read of a streamed body takes (``StreamReader.readany`` returns what is buffered)."""


def _user_agent() -> str:
    try:
        return f"conform/{importlib.metadata.version('conform')}"
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "conform"


_STREAM_HEADERS = {"Accept": "*/*", "Accept-Encoding": "identity"}
"""Headers of every streamed request: an encoded stream would be held back by the encoder, and its times
with it."""


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
    headers: Mapping[str, str]
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


async def _headers_sent(session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
    """aiohttp's trace signal: the request's head went to the connection. Time to first token counts from
    here, not from before the connection pool, the connect and the TLS handshake."""
    clock = context.trace_request_ctx
    if isinstance(clock, dict):
        clock["sent_at"] = time.monotonic()


class StreamResponse:
    """A response whose head arrived with a 2xx status; the body is read chunk by chunk.

    Each chunk is stamped when the read that took it returned: when its bytes reached the process
    (``arrived_at``), before any parsing. A busy event loop that reads late stamps late; the report's
    latency section says so (``token_times``).
    """

    __slots__ = ("_deadline", "_idle", "_last_read_at", "_response", "sent_at", "status", "url")

    def __init__(
        self, response: aiohttp.ClientResponse, url: str, sent_at: float, deadline: Deadline, idle: float
    ) -> None:
        self._response = response
        self.status = response.status
        self.url = url
        self.sent_at = sent_at
        """When the request that this answers was written to the connection (monotonic seconds)."""
        self._deadline = deadline
        self._idle = idle
        self._last_read_at = time.monotonic()

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def content_type(self) -> str:
        return str(self._response.headers.get("content-type", "")).split(";")[0].strip().lower()

    def arrived_at(self) -> float:
        """When the bytes of the chunk just read reached the process (monotonic seconds)."""
        return self._last_read_at

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks; raises decode_timeout, deadline_unmet or worker_reset. The task that iterates it is
        the one its limits cancel (and turn into those errors)."""
        watchdog = Watchdog(self._idle, self._deadline.at)
        read = self._response.content.readany
        try:
            while True:
                watchdog.waiting()
                try:
                    chunk = await read()
                except asyncio.CancelledError:
                    if watchdog.expired():
                        raise self._timeout_error(watchdog.idle_expired) from None
                    raise
                except (aiohttp.ClientError, OSError) as exc:
                    raise WorkerError(
                        ErrorKind.WORKER_RESET,
                        f"connection to {self.url} broke mid-stream: {_describe_exc(exc)}",
                        status=self.status,
                        in_stream=True,
                    ) from None
                self._last_read_at = time.monotonic()
                watchdog.done_waiting()
                if not chunk:
                    return
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
        """Close the stream's connection: a cancel closes it early, and that is how the engine learns of it."""
        self._response.close()


def _describe_exc(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HttpClient:
    """One aiohttp session per adapter (made on first use, inside the event loop), with the policies above."""

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        auth_headers: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        verify: bool | str = True,
        proxy: ProxyConfig | None = None,
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
        self._ssl: bool | ssl.SSLContext = (
            verify if isinstance(verify, bool) else ssl.create_default_context(cafile=verify)
        )
        self.proxy = (proxy or ProxyConfig()).for_url(self.base_url)
        """The proxy every request of this client goes through (None: direct)."""
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._open: set[aiohttp.ClientResponse] = set()
        """Streamed responses still open: closing the client closes their connections too."""

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

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_headers_sent)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl),
                headers={"User-Agent": _user_agent(), **self._auth_headers},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect),
                trace_configs=[trace],
                trust_env=False,
                read_bufsize=_READ_SIZE,
            )
        return self._session

    async def aclose(self) -> None:
        for response in list(self._open):
            response.close()
        self._open.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        ok_statuses: frozenset[int] | None = None,
        retry: bool = True,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> HttpReply:
        """A whole request within the total deadline. Non-2xx raises unless listed in ok_statuses.
        `body` sends raw bytes instead of `json_body` (a check that sends what no encoder would)."""
        deadline = Deadline.after(self.timeouts.total)
        return await self._with_retries(
            lambda: self._request_once(method, path, json_body, body, content_type, deadline, ok_statuses),
            deadline,
            retry,
        )

    async def _request_once(
        self,
        method: str,
        path: str,
        json_body: Any,
        raw: bytes | None,
        content_type: str,
        deadline: Deadline,
        ok_statuses: frozenset[int] | None,
    ) -> HttpReply:
        url = self.base_url + path
        response, _ = await self._send(method, url, json_body, deadline, raw=raw, content_type=content_type)
        try:
            body = await self._read_body(response, deadline, url)
        finally:
            response.release()
        if self.transcript is not None:
            self.transcript.body(body.decode("utf-8", "replace"))
        if 200 <= response.status < 300 or (ok_statuses is not None and response.status in ok_statuses):
            return HttpReply(response.status, response.headers, body, url)
        raise self._status_error(response.status, response.headers, body, url)

    @contextlib.asynccontextmanager
    async def open_stream(self, method: str, path: str, *, json_body: Any = None) -> AsyncIterator[StreamResponse]:
        """Open a streamed response; retries apply until the response headers arrive with a 2xx status.
        The stream's connection closes with it."""
        deadline = Deadline.after(self.timeouts.total)
        url = self.base_url + path
        response, sent_at = await self._with_retries(
            lambda: self._open_once(method, url, json_body, deadline), deadline, retry=True
        )
        self._open.add(response)
        try:
            yield StreamResponse(response, url, sent_at, deadline, self.timeouts.idle)
        finally:
            self._open.discard(response)
            response.close()

    async def _open_once(
        self, method: str, url: str, json_body: Any, deadline: Deadline
    ) -> tuple[aiohttp.ClientResponse, float]:
        """A response with a 2xx status, still open for streaming, and when its request was sent;
        any other status becomes a WorkerError."""
        response, sent_at = await self._send(method, url, json_body, deadline, stream=True)
        if 200 <= response.status < 300:
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding != "identity":
                response.close()
                raise WorkerError(
                    ErrorKind.PROTOCOL_VIOLATION,
                    f"{url} streamed with content encoding {encoding!r}, although the request asked for identity",
                    status=response.status,
                )
            return response, sent_at
        try:
            body = await self._read_body(response, deadline, url)
        finally:
            response.close()
        if self.transcript is not None:
            self.transcript.body(body.decode("utf-8", "replace"))
        raise self._status_error(response.status, response.headers, body, url)

    async def _send(
        self,
        method: str,
        url: str,
        json_body: Any,
        deadline: Deadline,
        *,
        stream: bool = False,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[aiohttp.ClientResponse, float]:
        """Send and wait for the response head: the response, which the caller owns (and must release or
        close), and when the request was written to the connection."""
        if self.transcript is not None:
            self.transcript.request(method, url, json_body if raw is None else raw.decode("utf-8", "replace"))
        data = raw if raw is not None else (None if json_body is None else msgspec.json.encode(json_body))
        headers = {"Content-Type": content_type} if data is not None else {}
        if stream:
            headers.update(_STREAM_HEADERS)
        clock = {"sent_at": time.monotonic()}
        try:
            async with asyncio.timeout_at(deadline.at):
                response = await self._session_now().request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    allow_redirects=False,
                    auto_decompress=not stream,
                    proxy=self.proxy,
                    trace_request_ctx=clock,
                )
        except TimeoutError:
            raise WorkerError(
                ErrorKind.DEADLINE_UNMET, f"{method} {url} got no response headers within the total deadline"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise WorkerError(
                ErrorKind.UPSTREAM_UNAVAILABLE,
                self._redact(f"could not connect to {url}: {_describe_exc(exc.os_error)}"),
            ) from None
        except aiohttp.InvalidURL:
            raise WorkerError(ErrorKind.INVALID_REQUEST, self._redact(f"{url} is not a valid URL")) from None
        except ValueError as exc:  # a header that cannot be sent (a line break in an API key): name it only
            raise WorkerError(
                ErrorKind.INVALID_REQUEST,
                f"{method} {url}: a request header cannot be sent ({_header_problem(exc, self._auth_headers)})",
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise WorkerError(
                ErrorKind.UPSTREAM_UNAVAILABLE,
                self._redact(f"{method} {url} failed before a response: {_describe_exc(exc)}"),
            ) from None
        if self.transcript is not None:
            self.transcript.response(response.status, dict(response.headers))
        return response, clock["sent_at"]

    async def _read_body(self, response: aiohttp.ClientResponse, deadline: Deadline, url: str) -> bytes:
        parts: list[bytes] = []
        size = 0
        success = 200 <= response.status < 300
        try:
            async with asyncio.timeout_at(deadline.at):
                while chunk := await response.content.readany():
                    parts.append(chunk)
                    size += len(chunk)
                    if size > _MAX_ERROR_BODY and not success:
                        break
        except TimeoutError:
            raise WorkerError(
                ErrorKind.DEADLINE_UNMET,
                f"{url} did not finish its response body within the total deadline",
                status=response.status,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise WorkerError(
                ErrorKind.WORKER_RESET,
                self._redact(f"connection to {url} broke while reading the body: {_describe_exc(exc)}"),
                status=response.status,
            ) from None
        return b"".join(parts)

    def _status_error(self, status: int, headers: Mapping[str, str], body: bytes, url: str) -> WorkerError:
        if 300 <= status < 400:
            where = headers.get("location")
            return WorkerError(
                ErrorKind.INVALID_REQUEST,
                self._redact(
                    f"{url} answered {status}, a redirect to {where or '(no Location header)'}: conform follows no "
                    "redirect; give the URL it points to, if that is the engine"
                ),
                status=status,
            )
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


def _header_problem(exc: ValueError, auth_headers: Mapping[str, str]) -> str:
    """Which header could not be sent, by name: aiohttp's own message may quote the value, a secret."""
    for name, value in auth_headers.items():
        if any(c in value for c in "\r\n\x00"):
            return f"the {name} header holds a line break or a NUL"
    return "a header holds a character HTTP does not allow"
