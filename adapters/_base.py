"""What every HTTP engine adapter shares: construction options, the client, cancel bookkeeping."""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from ._http import HttpClient, RetryPolicy, StreamResponse, Timeouts, classify_status, default_describer
from ._ndjson import NDJSONDecoder, NDJSONError
from ._proxy import ProxyConfig
from ._redact import Redactor
from ._sse import SSEDecoder, SSEError, SSEEvent
from ._transcript import Transcript
from ._types import Answer, EngineVersion, Health, Props, Started, TaskRequest, TokenEvent
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = [
    "AdapterOptions",
    "Decoder",
    "FrameFold",
    "Generation",
    "HttpAdapter",
    "Read",
    "StreamFold",
    "Whole",
    "field_text",
    "text_answer",
]

T = TypeVar("T")


class Decoder(Protocol[T]):
    """Bytes in, frames out (SSEDecoder, NDJSONDecoder); `pending` is true inside an unfinished frame.

    Each `feed` returns a list of its own, which its caller may change (a cancel empties it)."""

    @property
    def pending(self) -> bool: ...

    def feed(self, chunk: bytes) -> list[T]: ...


class Read(NamedTuple, Generic[T]):
    """The frames that one read of a streamed body completed, and when that read arrived."""

    at: float
    """Monotonic seconds. The frames of a read arrived together: their tokens carry this time, not the
    (later, and for a large read much later) time each was parsed."""
    frames: list[T]
    """Iterate it once, in order. It stops at a cancel: the rest of the read arrived before it, but is not
    delivered after it (cancel() empties the list, and its iterator then finds no next frame)."""


class StreamFold(Protocol):
    """Folds one stream's frames into token events: each engine's reading of its own wire, and nothing else.

    `fold` takes each frame as it comes (an SSE event's data, a whole SSEEvent, or an NDJSON line, per the
    Generation's `framing`) with the time its read arrived, and returns the events it completes; it raises
    WorkerError for an error frame or a frame that breaks the wire's grammar. Once it has folded the last
    frame (an End among its events) `finished` is true and nothing more is read. `end` is called when the
    body ends before that: it returns the events a stream without a terminator ends with, or raises the
    protocol violation of a stream cut short.
    """

    finished: bool

    def fold(self, frame: Any, at: float) -> Iterable[TokenEvent]: ...

    def end(self) -> Iterable[TokenEvent]: ...


Framing = Literal["sse", "sse_events", "ndjson"]
"""How a streamed body is cut into frames: SSE events' data strings, whole SSE events, or NDJSON lines."""


@dataclass(frozen=True, slots=True)
class Whole:
    """One request of an engine answered whole (not streamed), and where its reply holds the text."""

    path: str
    body: Any
    read: Callable[[Any], Answer | None]
    """The whole answer (text, tool calls, finish reason) from the parsed reply; None when the reply holds
    no answer. Wires that answer with text alone read it through `text_answer`."""


def text_answer(text: Callable[[Any], str | None]) -> Callable[[Any], Answer | None]:
    """The reader of a wire whose whole reply is text alone: `text` finds it (None when the reply has none)."""

    def read(reply: Any) -> Answer | None:
        found = text(reply)
        return None if found is None else Answer(found)

    return read


def field_text(reply: Any, key: str) -> str | None:
    """``reply[key]`` when the reply is an object and that is a string."""
    value = reply.get(key) if isinstance(reply, dict) else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Generation:
    """One streamed request of an engine: where it goes, what it sends, and how its frames fold."""

    path: str
    body: Any
    fold: StreamFold
    framing: Framing = "sse"


_decode_json = msgspec.json.Decoder().decode
"""Any JSON value, as dicts and lists; several times faster than the stdlib's parser, and exact for integers
of any size (a token id too large for 64 bits stays an int)."""

_NOT_READY = frozenset({400, 503})
"""Statuses a health endpoint answers while not ready (Triton's /v2/health/ready says 400)."""


@dataclass(frozen=True, slots=True)
class AdapterOptions:
    """Everything an adapter may be given besides its base URL. Secrets come in here, never from env."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    api_key: str | None = None
    verify: bool | str = True
    """True, False (insecure), or the path of a CA bundle."""
    redactor: Redactor = field(default_factory=Redactor)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    """The HTTP proxy to go through, by the target's scheme (the CLI reads HTTP_PROXY/NO_PROXY; adapters never do)."""
    model: str | None = None
    """The model to use when a request names none (else the first the engine lists, where it lists them)."""
    transcript: Transcript | None = None
    """Where to keep a redacted record of every request and received frame (--transcripts), if anywhere."""
    max_event_bytes: int = 4 * 1024 * 1024
    request_extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields added to the body of every generation request (an engine's own extensions, such as llama.cpp's
    cache_prompt on its OpenAI-compatible routes)."""


class HttpAdapter(abc.ABC):
    """Base for engine modules: owns the HttpClient and the open streams that cancel() may close.

    Subclasses implement the WorkerAdapter protocol's engine-specific half
    (health, props, engine_version, submit); cancel and aclose live here.
    """

    engine: str = ""
    capabilities: frozenset[Capability] = frozenset()
    models_path: str = "/v1/models"
    """Where the engine lists its models (OpenAI's list shape: ``{"data": [{"id": …}]}``)."""
    also_speaks: tuple[str, ...] = ()
    """Other engines' wires the same server serves (llama.cpp: OpenAI's /v1 and Anthropic's /v1/messages)."""
    public_health: bool = False
    """The engine documents its health endpoint as open without an API key (llama.cpp's /health)."""
    metrics_path: str = "/metrics"
    """Where the engine exposes Prometheus metrics (engines with the metrics capability)."""
    metrics_counters: Mapping[str, str] = {}
    """The engine's counters of what it served, by what they count (``prompt_tokens``, ``generated_tokens``,
    ``requests``), and its gauge of requests waiting for a slot (``queued_requests``): sample names of its
    Prometheus exposition."""
    budget_key: tuple[str, ...] = ("max_tokens",)
    """Where the token budget sits in the body of a non-streamed request (`whole`), as a path of keys."""

    def __init__(self, base_url: str, options: AdapterOptions | None = None) -> None:
        self.options = options or AdapterOptions()
        self.base_url = base_url.rstrip("/")
        self.http = HttpClient(
            self.base_url,
            timeouts=self.options.timeouts,
            retry=self.options.retry,
            auth_headers=self.auth_headers(self.options.api_key),
            redactor=self.options.redactor,
            verify=self.options.verify,
            proxy=self.options.proxy,
            describe_error=self.describe_error,
            classify_error=self.classify_error,
            transcript=self.options.transcript,
        )
        self._default_model: str | None = None
        self._open: dict[str, StreamResponse] = {}
        self._cancelled: set[str] = set()
        self._delivering: dict[str, list[Any]] = {}
        """The frames of the read each open stream is delivering, which a cancel cuts short."""

    def replaced(self, **changes: Any) -> HttpAdapter:
        """Another adapter for the same target, with these options changed (a key, a retry policy); its own
        connections, no transcript; the original key stays redacted in what it reports. Close it after use."""
        secrets = [self.options.api_key] if self.options.api_key else []
        redactor = self.options.redactor.with_secrets(secrets)
        return type(self)(
            self.base_url, dataclasses.replace(self.options, redactor=redactor, transcript=None, **changes)
        )

    def with_api_key(self, api_key: str | None) -> HttpAdapter:
        """The same adapter for the same target, sending `api_key` (or none) instead of its own."""
        return self.replaced(api_key=api_key)

    def auth_headers(self, api_key: str | None) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def classify_error(self, status: int, body: Any, message: str) -> ErrorKind:
        """The kind of an HTTP error; engines whose error body names its class override this."""
        return classify_status(status, message)

    def describe_error(self, status: int, body: Any) -> str:
        """The engine's own error message from an error body; engines override for their shapes."""
        return default_describer(status, body)

    @abc.abstractmethod
    async def health(self) -> Health: ...

    @abc.abstractmethod
    async def engine_version(self) -> EngineVersion: ...

    @abc.abstractmethod
    async def generation(self, req: TaskRequest) -> Generation:
        """The streamed request for `req`, and the fold that reads its answer."""

    async def submit(self, req: TaskRequest) -> AsyncGenerator[TokenEvent, None]:
        """Stream one generation; close the iterator (``contextlib.aclosing``) to disconnect early."""
        generation = await self.generation(req)
        fold = generation.fold
        async with self._open_frames(req.task_id, generation) as batches:
            yield self.started(req.task_id)
            async for read in batches:
                at = read.at
                for frame in read.frames:
                    for event in fold.fold(frame, at):
                        yield event
                    if fold.finished:
                        return
        for event in fold.end():
            yield event

    def stream_error(self, message: str) -> WorkerError:
        """An error the engine reported inside a 200 stream, in its own words (redacted)."""
        return WorkerError(
            ErrorKind.ENGINE_ERROR, self.http.redact(f"error inside the stream: {message}"), status=200, in_stream=True
        )

    async def props(self) -> Props:
        """What an engine without a props endpoint can say: the first model it lists."""
        models = await self.list_models()
        return Props(model=models[0] if models else None)

    async def model_entries(self) -> list[dict[str, Any]]:
        """The entries (each with an ``id``) the engine lists at `models_path`."""
        body = (await self.http.request("GET", self.models_path)).json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}{self.models_path} answered without a data list"
            )
        return [m for m in data if isinstance(m, dict) and "id" in m]

    async def list_models(self) -> list[str]:
        """The ids the engine lists at `models_path`."""
        return [str(m["id"]) for m in await self.model_entries()]

    async def model_for(self, req: TaskRequest) -> str:
        """The request's model, else the default one."""
        return req.model if req.model is not None else await self.default_model()

    async def default_model(self) -> str:
        """The target's model (--model), else the first the engine lists (for APIs that require one)."""
        if self.options.model is not None:
            return self.options.model
        if self._default_model is None:
            models = await self.list_models()
            if not models:
                raise WorkerError(ErrorKind.NOT_FOUND, f"{self.base_url}{self.models_path} lists no model")
            self._default_model = models[0]
        return self._default_model

    async def probe_health(self, path: str, is_ready: Callable[[Any], bool]) -> Health:
        """GET a health endpoint: ready when it answers 2xx and `is_ready(body)`; 503 and errors are not ready."""
        try:
            reply = await self.http.request("GET", path, ok_statuses=_NOT_READY, retry=False)
        except WorkerError as error:
            return Health(ready=False, status=error.status, detail=error.message)
        body = reply.json_or_text()
        if reply.status in _NOT_READY:
            return Health(ready=False, status=reply.status, detail=self.describe_error(reply.status, body))
        ready = is_ready(body)
        return Health(ready=ready, status=reply.status, detail="" if ready else f"unexpected body {body!r}"[:200])

    async def whole(self, req: TaskRequest) -> Whole:
        """The request for `req` answered whole; engines with the non_streaming capability implement it."""
        raise WorkerError(ErrorKind.INVALID_REQUEST, f"{self.engine} adapter has no non-streaming completion")

    async def metrics(self) -> dict[str, float]:
        """The current value of each of `metrics_counters`, read from the engine's Prometheus exposition (with
        prometheus_client's parser); a counter the exposition lacks is left out."""
        reply = await self.http.request("GET", self.metrics_path, retry=False)
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(reply.body.decode("utf-8", "replace"))
            for sample in family.samples
        }
        return {what: samples[name] for what, name in self.metrics_counters.items() if name in samples}

    async def whole_logprobs(self, req: TaskRequest) -> list[float]:
        """The log-probability of each token of `req` answered whole (engines with the top_logprobs capability)."""
        raise WorkerError(ErrorKind.INVALID_REQUEST, f"{self.engine} adapter reads no logprobs of a whole answer")

    async def count_prompt_tokens(self, req: TaskRequest) -> int:
        """How many tokens the engine's own tokenizer makes of `req`'s prompt, as generation takes it in
        (engines with the tokenize capability implement it)."""
        raise WorkerError(ErrorKind.INVALID_REQUEST, f"{self.engine} adapter has no tokenizer endpoint")

    async def detokenize(self, ids: list[int]) -> str:
        """The text of token ids, by the engine's own tokenizer (engines with the detokenize capability)."""
        raise WorkerError(ErrorKind.INVALID_REQUEST, f"{self.engine} adapter has no detokenizer endpoint")

    async def answer(self, req: TaskRequest) -> Answer:
        """The request answered whole, without streaming: its text, tool calls and finish reason."""
        whole = await self.whole(req)
        reply = (await self.http.request("POST", whole.path, json_body=self._with_extra(whole.body))).json()
        answer = whole.read(reply)
        if answer is None:
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}{whole.path} answered without text")
        return answer

    async def complete(self, req: TaskRequest) -> str:
        """The whole completion of a request, without streaming (the reference a stream reassembles to)."""
        return (await self.answer(req)).text

    async def cancel(self, task_id: str) -> None:
        """Stop a running stream by closing its connection (the engine-side cancel signal)."""
        self._cancelled.add(task_id)
        frames = self._delivering.pop(task_id, None)
        if frames is not None:
            frames.clear()  # what is left of the read being delivered arrived before the cancel: not delivered
        stream = self._open.get(task_id)
        if stream is not None:
            await stream.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    def _with_extra(self, body: Any) -> Any:
        """A request body with the options' request_extra fields added (a body that is no object, as is)."""
        extra = self.options.request_extra
        return {**body, **extra} if extra and isinstance(body, dict) else body

    def sibling(self, engine: str) -> HttpAdapter:
        """An adapter for another wire of the same server (one of `also_speaks`), with these options; its own
        connections, no transcript. Close it after use."""
        from ._engines import create_adapter  # the engines' registry imports this module

        return create_adapter(engine, self.base_url, dataclasses.replace(self.options, transcript=None))

    def started(self, task_id: str) -> Started:
        """The Started event of the stream open for `task_id`: now, and when its request was sent."""
        return Started(task_id, time.monotonic(), self._open[task_id].sent_at)

    def _decoder(self, framing: Framing) -> tuple[Decoder[Any], str]:
        """The decoder of a framing, writing to the transcript where there is one, and its content type."""
        transcript = self.options.transcript
        if framing == "ndjson":
            return _transcribed(NDJSONDecoder(self.options.max_event_bytes), transcript), "application/x-ndjson"
        events = SSEDecoder(self.options.max_event_bytes, strict_utf8=True)
        if framing == "sse_events":
            return _transcribed(events, transcript), "text/event-stream"
        return _EventData(events, transcript), "text/event-stream"

    @contextlib.asynccontextmanager
    async def _open_frames(self, task_id: str, generation: Generation) -> AsyncIterator[AsyncIterator[Read[Any]]]:
        """POST the generation's body, check the streamed content type, and yield decoded frames a read at a
        time; registers the stream for cancel()."""
        decoder, content_type = self._decoder(generation.framing)
        self._cancelled.discard(task_id)
        body = self._with_extra(generation.body)
        async with self.http.open_stream("POST", generation.path, json_body=body) as stream:
            if stream.content_type != content_type:
                raise WorkerError(
                    ErrorKind.PROTOCOL_VIOLATION,
                    f"{stream.url} streamed with content type {stream.content_type or '(none)'!r}, "
                    f"expected {content_type!r}",
                    status=stream.status,
                )
            self._open[task_id] = stream
            try:
                yield self._frame_batches(task_id, stream, decoder)
            finally:
                self._open.pop(task_id, None)
                self._delivering.pop(task_id, None)

    async def _frame_batches(self, task_id: str, stream: StreamResponse, decoder: Decoder[T]) -> AsyncIterator[Read[T]]:
        """The frames of each read, and when the read arrived: one async hop per read rather than per token."""
        try:
            async for chunk in stream.chunks():
                at = stream.arrived_at()
                frames = decoder.feed(chunk)
                if frames:
                    # The decoder's own new list: a cancel may empty it (one check per read, none per frame).
                    self._delivering[task_id] = frames
                    yield Read(at, frames)
                if task_id in self._cancelled:
                    break
        except WorkerError:
            if task_id not in self._cancelled:
                raise
        except (SSEError, NDJSONError) as exc:
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{stream.url}: {exc}", in_stream=True) from None
        if task_id in self._cancelled:
            raise WorkerError(ErrorKind.CANCELLED, f"task {task_id} was cancelled by the caller", in_stream=True)
        if decoder.pending:
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION,
                f"{stream.url}: the stream ended inside a frame (the last one was never terminated)",
                in_stream=True,
            )

    @staticmethod
    def parse_object(data: str, url: str, number: int) -> dict[str, Any]:
        """One frame that must be a JSON object (every engine's token frames are)."""
        frame = HttpAdapter.parse_json(data, url, number)
        if type(frame) is not dict:
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION, f"{url}: frame {number} is JSON but not an object", in_stream=True
            )
        return frame

    @staticmethod
    def parse_json(data: str, url: str, number: int) -> Any:
        """One frame's JSON; a frame that is not JSON is a protocol violation naming the frame."""
        try:
            return _decode_json(data)
        except (msgspec.DecodeError, UnicodeEncodeError):
            pass
        try:
            # The slow path: what msgspec refuses and the stdlib takes (a lone surrogate), and the error message.
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION,
                f"{url}: frame {number} is not JSON ({exc.msg} at column {exc.pos + 1}): {data[:120]!r}",
                in_stream=True,
            ) from None


class FrameFold:
    """What the folds of most wires share: the frame count, JSON objects named by their number in errors,
    and, for a wire whose last frame says it is the last, a body that ends before it is cut short."""

    terminator = "its final frame"
    """What the last frame is, in the words of the error when it never comes."""

    def __init__(self, adapter: HttpAdapter, url: str) -> None:
        self.adapter = adapter
        self.url = url
        self.frames = 0
        self.finished = False

    def object(self, data: str) -> dict[str, Any]:
        """The next frame, which must be a JSON object."""
        self.frames += 1
        return HttpAdapter.parse_object(data, self.url, self.frames)

    def end(self) -> Iterable[TokenEvent]:
        raise WorkerError(
            ErrorKind.PROTOCOL_VIOLATION, f"{self.url}: the stream ended without {self.terminator}", in_stream=True
        )


class _Transcribed(Generic[T]):
    """A decoder whose every frame is also written to the transcript, as it came off the wire."""

    __slots__ = ("_decoder", "_transcript")

    def __init__(self, decoder: Decoder[T], transcript: Transcript) -> None:
        self._decoder = decoder
        self._transcript = transcript

    @property
    def pending(self) -> bool:
        return self._decoder.pending

    def feed(self, chunk: bytes) -> list[T]:
        frames = self._decoder.feed(chunk)
        for frame in frames:
            self._transcript.frame(_event_text(frame) if isinstance(frame, SSEEvent) else str(frame))
        return frames


def _transcribed(decoder: Decoder[T], transcript: Transcript | None) -> Decoder[T]:
    """The decoder, writing each frame to the transcript where there is one."""
    return decoder if transcript is None else _Transcribed(decoder, transcript)


class _EventData:
    """A decoder of the data of each SSE event. Without a transcript, a read of plain events is cut into its
    data with no event object made (`SSEDecoder.feed_data`); with one, the whole events go to it first."""

    __slots__ = ("_events", "_transcribed")

    def __init__(self, events: SSEDecoder, transcript: Transcript | None) -> None:
        self._events = events
        self._transcribed = None if transcript is None else _Transcribed(events, transcript)

    @property
    def pending(self) -> bool:
        return self._events.pending

    def feed(self, chunk: bytes) -> list[str]:
        if self._transcribed is None:
            return self._events.feed_data(chunk)
        return [event.data for event in self._transcribed.feed(chunk)]


def _event_text(event: SSEEvent) -> str:
    """An SSE event as its wire fields, for a transcript."""
    return f"event: {event.event}\ndata: {event.data}" if event.event != "message" else f"data: {event.data}"
