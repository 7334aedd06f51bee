"""What every stub engine shares: state, request recording, and the fault player.

An engine module only knows its wire format: how one token frame, the final
frame, an in-stream error and an HTTP error body look. The player here turns
those frames plus the script's faults into bytes on the wire, and tracks each
generation so that engine-side cancellation can be proven (a generation whose
client left must stop, unless the script says it ignores disconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ._arrival import ARRIVED_AT
from .script import (
    AbandonUnderLoadFault,
    AcceptAnyKeyFault,
    ClaimAnyModelFault,
    CloseEarlyFault,
    ContentTypeFault,
    DuplicateTokenFault,
    EndlessFault,
    ErrorInStreamFault,
    Fault,
    Framing,
    IgnoreDisconnectFault,
    LeakStopFault,
    LegacyErrorLineFault,
    MalformedJsonFault,
    MisreportInvalidFault,
    MisreportUsageFault,
    MissingFinalFault,
    NonUtf8Fault,
    OverloadFault,
    OverrunFault,
    OversizedFrameFault,
    ReorderTokensFault,
    ResetFault,
    RunCancelledQueuedFault,
    Script,
    SkipTokenFault,
    SlowLorisFault,
    SlowUnderLoadFault,
    SplitCharactersFault,
    StallFault,
    StatusFault,
    WireDriftFault,
)
from .structured import json_tokens, structured_schema, structured_text
from .tokens import StubToken, TokenGenerator, generate_tokens, split_characters, tokenize

__all__ = [
    "STUB_KEY",
    "Generation",
    "Refusal",
    "StreamPlan",
    "StubContext",
    "StubState",
    "WireFormat",
    "answer_whole",
    "dumps",
    "encode_sse",
    "generation_route",
    "message_text",
    "overloaded",
    "play_stream",
    "prompt_tokens",
    "record_request",
    "render_message",
    "stub_middleware",
]


class Refusal(NamedTuple):
    """What an engine answers a request it refuses before generating: the HTTP status and its message."""

    status: int
    message: str


@dataclass(slots=True)
class Generation:
    """One generation request as the stub saw it."""

    number: int
    prompt: str
    seed: int
    max_tokens: int
    started_at: float = 0.0
    """When the stub began generating (event-loop clock): token k is due `token_delay_ms * (k + 1)` after it."""
    tokens_sent: int = 0
    written_at: list[float] | None = None
    """When each token frame was handed to the connection (event-loop clock), if the stub keeps a timeline."""
    finished: bool = False
    cancelled: bool = False
    """The client left before the end and the stub stopped generating."""
    stop_word: str | None = None
    """The stop string that ended the generation, if one did."""
    generated: int = 0
    """How many tokens it was to stream (what an engine's counters of generated tokens count)."""
    began: bool = False
    """It took a slot at some point: its prompt was evaluated (a queued generation dropped in the queue never)."""


@dataclass(slots=True)
class StubState:
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    """(method, path, parsed JSON body or None) of every request, in arrival order."""
    generations: list[Generation] = field(default_factory=list)
    slot_tasks: dict[int, int] = field(default_factory=dict)
    """Slot index -> number of the generation running on it, or the last that ran on it (as llama.cpp's /slots
    keeps an idle slot's last id_task)."""
    busy_slots: set[int] = field(default_factory=set)
    """Slots a generation runs on right now (what /slots reports as processing)."""
    queued: int = 0
    """Generations waiting for a slot right now (llama.cpp's requests_deferred)."""
    admitted: int = 0
    """Generation requests inside the stub right now, from arrival to the end of their response."""
    background: set[asyncio.Task[None]] = field(default_factory=set)
    """Generations that outlive their request (ignore_disconnect); cancelled when the stub closes."""


@dataclass(slots=True)
class StubContext:
    """Everything a stub application needs; held in the app under STUB_KEY."""

    engine: str
    script: Script
    seed: int
    model: str
    salt: str = ""
    total_slots: int = 2
    ctx_size: int = 4096
    started: float = field(default_factory=time.time)
    state: StubState = field(default_factory=StubState)
    generator: TokenGenerator = generate_tokens
    """Where tokens come from: seeded random words, or (the echo engine) the prompt itself."""
    keep_timeline: bool = False
    """Record when each token frame was written (`Generation.written_at`); off, nothing accumulates."""
    _slots: asyncio.Semaphore | None = None

    def slots_full(self) -> bool:
        """Whether a generation arriving now waits for a slot (a queueing script, every slot taken)."""
        return self._slots is not None and self._slots.locked()

    def slot(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A generation's slot: with a queueing script, one of `total_slots`, waited for; else none to wait for."""
        if not self.script.queue:
            return contextlib.nullcontext()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.total_slots)
        return self._slots

    def serves(self, model: str, models: list[str] | None = None) -> bool:
        """Whether a request for `model` is served: one of `models` (default: the stub's own), or any model
        under a claim_any_model fault."""
        return model in (models or [self.model]) or any(isinstance(f, ClaimAnyModelFault) for f in self.script.faults)

    def answering_model(self, requested: str | None) -> str:
        """The model an answer names: the stub's own, or, under a claim_any_model fault, the one requested."""
        claims = any(isinstance(f, ClaimAnyModelFault) for f in self.script.faults)
        return requested if claims and requested else self.model

    def reported_prompt_tokens(self, prompt: str) -> int:
        """The prompt's length as the usage reports it: what the tokenizer counts, unless a fault misreports it."""
        offset = sum(f.prompt_tokens for f in self.script.faults if isinstance(f, MisreportUsageFault))
        return prompt_tokens(prompt) + offset

    def faults_for(self, generation: Generation) -> list[Fault]:
        return [f for f in self.script.faults if f.times is None or generation.number <= f.times]

    @contextlib.asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Count a generation request as in flight for as long as its handler runs."""
        self.state.admitted += 1
        try:
            yield
        finally:
            self.state.admitted -= 1

    async def new_generation(
        self, request: web.Request, prompt: str, seed: int | None, max_tokens: int | None
    ) -> tuple[Generation, list[StubToken]]:
        """Register a generation and decide its tokens, applying the script's determinism behaviour.

        Generation begins when the request arrived: parsing it and deciding its
        tokens are part of the scripted wait for the first token, as an engine's
        prefill is. A batch-variant script first waits one batch window, as a
        batching scheduler does, and changes the tokens if other requests arrived.
        """
        behaviour = self.script.determinism
        # Stamped by StubServer; an app served some other way starts the schedule here.
        started_at = request.get(ARRIVED_AT, asyncio.get_running_loop().time())
        if behaviour.batch_variant_at is not None:
            await asyncio.sleep(BATCH_WINDOW_S)
            started_at = asyncio.get_running_loop().time()
        effective_seed = self.seed if seed is None or seed < 0 or behaviour.fixed_seed else seed
        limit = 16 if max_tokens is None or max_tokens < 0 else max_tokens
        if self.script.max_tokens is not None:
            limit = min(limit, self.script.max_tokens)
        number = len(self.state.generations) + 1
        faults = [f for f in self.script.faults if f.times is None or number <= f.times]
        limit += sum(f.extra for f in faults if isinstance(f, OverrunFault))
        if any(isinstance(f, EndlessFault) for f in faults):
            limit = ENDLESS_TOKENS  # the budget is ignored: the client has to stop reading
        generation = Generation(number, prompt, effective_seed, limit, started_at)
        if self.keep_timeline:
            generation.written_at = []
        in_flight = self.state.admitted - 1
        self.state.generations.append(generation)
        salt = self.salt + behaviour.generator
        if behaviour.ignore_seed:
            salt += f"/request {number}"
        if request.path.startswith("/v1/") and any(isinstance(f, WireDriftFault) for f in self.script.faults):
            salt += "/another wire"
        if behaviour.ignore_top_k and _samples(request.get(BODY_KEY)):
            salt += "/sampled without top_k"
        tokens = self.generator(effective_seed, prompt, limit, salt=salt)
        schema = structured_schema(request.get(BODY_KEY))
        if schema is not None:  # constrained to JSON: the schema's example, whatever the seed
            tokens = json_tokens(structured_text(schema, faults))[:limit]
        if behaviour.diverge_at is not None:
            tokens = _diverge(tokens, behaviour.diverge_at, effective_seed, prompt, salt + "/diverged")
        if behaviour.batch_variant_at is not None and in_flight > 0:
            tokens = _diverge(tokens, behaviour.batch_variant_at, effective_seed, prompt, salt + "/batched")
        tokens, generation.stop_word = cut_at_stop(
            tokens, _stop_strings(request.get(BODY_KEY)), keep=any(isinstance(f, LeakStopFault) for f in faults)
        )
        if any(isinstance(f, SplitCharactersFault) for f in faults):
            tokens = split_characters(tokens)
        generation.generated = len(tokens)
        if behaviour.logprob_jitter:
            shift = behaviour.logprob_jitter * (number % 3)
            tokens = [t._replace(logprob=t.logprob - shift) for t in tokens]
        return generation, tokens


def _stop_strings(body: Any) -> list[str]:
    """A request's stop strings, wherever its wire puts them (``stop``, ``stop_sequences``, in ``options`` or
    ``parameters``): a string or a list of them."""
    if not isinstance(body, dict):
        return []
    for key in ("stop", "stop_sequences"):
        value = body.get(key)
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [s for s in value if isinstance(s, str) and s]
    return next((found for v in body.values() if isinstance(v, dict) and (found := _stop_strings(v))), [])


def cut_at_stop(tokens: list[StubToken], stops: list[str], *, keep: bool = False) -> tuple[list[StubToken], str | None]:
    """The tokens up to the first of `stops` in their text, the one cut inside shortened to end before it (with
    `keep`, after it: a leak), and the stop string; or the tokens as they are and None."""
    text = "".join(t.text for t in tokens)
    found = min(((text.find(stop), stop) for stop in stops if stop in text), default=None)
    if found is None:
        return tokens, None
    at, stop = found
    end = at + len(stop) if keep else at
    cut: list[StubToken] = []
    position = 0
    for token in tokens:
        if position >= end:
            break
        piece = token.text[: end - position]
        cut.append(token if piece == token.text else token._replace(text=piece))
        position += len(token.text)
    return cut, stop


def _samples(body: Any) -> bool:
    """Whether a request asks to sample: a temperature above 0, wherever its wire nests it (``temperature``,
    ``options.temperature``, ``parameters.temperature``)."""
    if not isinstance(body, dict):
        return False
    temperature = body.get("temperature")
    if isinstance(temperature, int | float):
        return temperature > 0
    return any(_samples(value) for value in body.values() if isinstance(value, dict))


def _diverge(tokens: list[StubToken], at: int, seed: int, prompt: str, salt: str) -> list[StubToken]:
    """Tokens from index `at` on come from another stream, each guaranteed to differ from the original."""
    other = generate_tokens(seed, prompt, len(tokens), salt=salt)
    changed = [
        o if o.id != t.id else StubToken(t.id + 1, t.text + "'", t.logprob) for t, o in zip(tokens, other, strict=True)
    ]
    return tokens[:at] + changed[at:]


STUB_KEY = web.AppKey("conform_stub", StubContext)
BODY_KEY = web.RequestKey("conform_body", object)
"""Where record_request leaves a request's parsed body on the request, for the generation it starts."""

GenerationHandler = Callable[[web.Request, StubContext], Awaitable[web.StreamResponse]]


async def overloaded(request: web.Request, context: StubContext) -> web.StreamResponse | None:
    """An overload fault's answer to a generation that arrives while every slot is busy (a hang, until the
    client gives up and the handler is cancelled, where it has no status); None otherwise."""
    overload = next((f for f in context.script.faults if isinstance(f, OverloadFault)), None)
    if overload is None or context.state.admitted < context.total_slots:
        return None
    await record_request(request)
    if overload.status is None:
        await asyncio.Event().wait()
    error = {"error": {"message": "Internal Server Error", "code": overload.status}}
    return web.json_response(error, status=overload.status or 500)


def generation_route(handle: GenerationHandler) -> Handler:
    """The aiohttp handler of a generation route: the request counts as admitted while `handle` answers it."""

    async def route(request: web.Request) -> web.StreamResponse:
        context = request.app[STUB_KEY]
        refused = await overloaded(request, context)
        if refused is not None:
            return refused
        async with context.admission():
            return await handle(request, context)

    return route


def dumps(obj: Any) -> str:
    """Compact JSON, as engines write it (UTF-8, not escaped to ASCII). Encoded in C: it runs at least once a
    token, and the stdlib's encoder took a quarter of a zero-delay stub's time."""
    return msgspec.json.encode(obj).decode()


def message_text(messages: Sequence[dict[str, Any]]) -> str:
    """A conversation's text as the stub generates from it and counts it: each message's content, a line each."""
    return "\n".join(str(m.get("content", "")) for m in messages)


def prompt_tokens(prompt: str) -> int:
    """The stub's prompt length in tokens: one per word (what context-size checks compare)."""
    return len(tokenize(prompt))


async def record_request(request: web.Request) -> Any:
    """Read the body (JSON if it parses, else text), remember the request, and return the body."""
    context = request.app[STUB_KEY]
    body: Any = None
    if request.body_exists:  # not can_read_body: that turns False once a handler has read the body
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
    context.state.requests.append((request.method, request.path, body))
    request[BODY_KEY] = body
    return body


_HEADER_PLACEHOLDER = re.compile(r"\{header:([A-Za-z0-9-]+)\}")


def render_message(message: str, request: web.Request) -> str:
    """Fill ``{header:NAME}`` with the request's header: a script can make the stub echo credentials back."""
    return _HEADER_PLACEHOLDER.sub(lambda m: request.headers.get(m.group(1), ""), message)


def _authorized(request: web.Request, script: Script) -> bool:
    """Whether a request may be served: no key required, a health check (public, as engines document it), or
    the script's key (any key at all under an accept_any_key fault)."""
    if script.api_key is None or (request.method == "GET" and "health" in request.path):
        return True
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    given = bearer or request.headers.get("x-api-key", "")
    if any(isinstance(f, AcceptAnyKeyFault) for f in script.faults):
        return bool(given)
    return given == script.api_key


_VALIDATION_STATUSES = frozenset({400, 413, 422})
"""What a stub answers a request it refuses as invalid (a body that is not JSON, a parameter of a wrong type)."""


def stub_middleware(error_response: Callable[[int, str], web.StreamResponse]) -> Middleware:
    """What every stub does around its handlers: errors in the engine's own error body (unknown paths answer
    404; aiohttp's default is plain text); a `misreport_invalid` fault answers what the stub refuses as
    invalid with its own status and message; a `slow_under_load` fault holds every request but generations
    while one is in flight."""

    @web.middleware
    async def around(request: web.Request, handler: Handler) -> web.StreamResponse:
        context: StubContext = request.app[STUB_KEY]
        slow = next((f for f in context.script.faults if isinstance(f, SlowUnderLoadFault)), None)
        if slow is not None and request.method == "GET" and context.state.admitted > 0:
            await asyncio.sleep(slow.delay_ms / 1000)
        if not _authorized(request, context.script):
            await record_request(request)
            return error_response(401, "Invalid API Key")
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            await record_request(request)
            return error_response(404, "File Not Found")
        except web.HTTPMethodNotAllowed:
            await record_request(request)
            return error_response(405, "Method Not Allowed")
        if response.status in _VALIDATION_STATUSES:
            misreport = next((f for f in context.script.faults if isinstance(f, MisreportInvalidFault)), None)
            if misreport is not None:
                return error_response(misreport.status, misreport.message)
        return response

    return around


ENDLESS_TOKENS = 4_000
"""What an endless stream sends at most: far past any budget the checks ask for (at most 256 tokens), still
cheap to draw before the response head (a loaded machine must not turn it into a stall)."""

BATCH_WINDOW_S = 0.05
"""How long a batch-variant stub waits for other requests to share its batch."""


class WireFormat(Protocol):
    """How one engine encodes the parts of a stream. Frames are complete wire bytes."""

    content_type: str

    def error_response(self, status: int, message: str, headers: dict[str, str]) -> web.Response: ...

    def error_frame(self, message: str) -> bytes: ...

    def legacy_error_frame(self, message: str) -> bytes: ...

    def malformed_frame(self) -> bytes: ...


def encode_sse(data: str, framing: Framing, event: str | None = None) -> bytes:
    """One SSE event with the framing variant the script asks for."""
    if event is None and "\n" not in data and framing.line_ending == "lf":
        # The common case, once per token: no splitting, no joining.
        return (b"data: " if framing.space_after_colon else b"data:") + data.encode() + b"\n\n"
    newline = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}[framing.line_ending]
    separator = ": " if framing.space_after_colon else ":"
    lines = [f"event{separator}{event}"] if event is not None else []
    lines.extend(f"data{separator}{part}" for part in data.split("\n"))
    return (newline.join(lines) + newline + newline).encode()


def _keepalive(framing: Framing) -> bytes:
    newline = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}[framing.line_ending]
    return f": keep-alive{newline}{newline}".encode()


@dataclass(slots=True)
class StreamPlan:
    """One normal stream: a frame per token, then the engine's final frame(s).

    Token frames are encoded when they are written, not before the first one:
    a stream's whole plan built up front would hold its first token back, and
    the stub would stop streaming to its client while it encodes.
    """

    tokens: Sequence[StubToken]
    """The tokens that get a token frame each."""
    token_frame: Callable[[StubToken, int], bytes]
    """The wire bytes of a token's frame, given the token and its position."""
    final_frames: list[bytes]
    lead: bytes = b""
    """Bytes that travel with the first token frame (a chat role chunk, Anthropic's message_start)."""

    def frame(self, k: int) -> bytes:
        data = self.token_frame(self.tokens[k], k)
        return self.lead + data if k == 0 and self.lead else data


@dataclass(slots=True)
class _Step:
    data: bytes | None
    """The bytes to write; None for an unaltered token frame, encoded from the plan when it is written."""
    token: int | None = None
    """Which token frame this is (None for non-token frames): delays and faults are counted in tokens."""


def _step_bytes(plan: StreamPlan, step: _Step) -> bytes:
    if step.data is not None:
        return step.data
    assert step.token is not None, "a step without bytes is a token frame"
    return plan.frame(step.token)


def _apply_faults(
    plan: StreamPlan, faults: list[Fault], wire: WireFormat, render: Callable[[str], str]
) -> tuple[list[_Step], _Ending | None]:
    """The sequence of writes, and how it ends when it is cut short in its last step (close_early, reset)."""
    steps = [_Step(None, i) for i in range(len(plan.tokens))]
    tail = [_Step(frame) for frame in plan.final_frames]
    ending: _Ending | None = None
    for fault in faults:
        match fault:
            case DuplicateTokenFault(at_token=k) if k < len(steps):
                steps.insert(k + 1, _Step(steps[k].data, steps[k].token))
            case ReorderTokensFault(at_token=k) if k + 1 < len(steps):
                steps[k], steps[k + 1] = steps[k + 1], steps[k]
            case SkipTokenFault(at_token=k) if k < len(steps):
                del steps[k]
            case MalformedJsonFault(at_token=k) if k < len(steps):
                steps[k] = _Step(wire.malformed_frame(), steps[k].token)
            case OversizedFrameFault(at_token=k, size=size) if k < len(steps):
                steps[k] = _Step(_oversized(size, wire), steps[k].token)
            case NonUtf8Fault(at_token=k) if k < len(steps):
                # Inside the first JSON string of the frame: still one line, no longer UTF-8.
                steps[k] = _Step(_step_bytes(plan, steps[k]).replace(b'"', b'"\xff\xfe', 1), steps[k].token)
            case MissingFinalFault():
                tail = []
            case ErrorInStreamFault(at_token=k, message=message):
                steps, tail = steps[:k], [_Step(wire.error_frame(render(message)))]
            case LegacyErrorLineFault(at_token=k, message=message):
                steps, tail = steps[:k], [_Step(wire.legacy_error_frame(message))]
            case CloseEarlyFault(at_token=k) | ResetFault(at_token=k):
                steps, tail = steps[: k + 1], []
                ending = _Ending(reset=isinstance(fault, ResetFault)) if steps else None
    return steps + tail, ending


@dataclass(frozen=True, slots=True)
class _Ending:
    """A stream cut short in the middle of its last step: by a close (FIN), or a reset (RST)."""

    reset: bool = False


def _oversized(size: int, wire: WireFormat) -> bytes:
    """One frame of `size` bytes in the engine's framing: a single giant line."""
    padding = b"A" * max(0, size - 32)
    if wire.content_type == "text/event-stream":
        return b'data: {"padding":"' + padding + b'"}\n\n'
    return b'{"padding":"' + padding + b'"}\n'


async def play_stream(
    request: web.Request,
    context: StubContext,
    generation: Generation,
    plan: StreamPlan,
    wire: WireFormat,
) -> web.StreamResponse:
    """Write one streamed response, honouring the script's pace, framing and faults."""
    faults = context.faults_for(generation)
    refusal = await _before_headers(request, faults, generation, wire)
    if refusal is not None:
        return refusal
    stalls = {f.phase: f for f in faults if isinstance(f, StallFault)}
    start = generation.started_at
    content_type = next((f.value for f in faults if isinstance(f, ContentTypeFault)), wire.content_type)
    response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
    await response.prepare(request)
    if "after_headers" in stalls:
        await asyncio.sleep(stalls["after_headers"].seconds)
    if stalls.keys() & {"before_headers", "after_headers"}:
        start = asyncio.get_running_loop().time()  # a stall holds the whole schedule back, not only one token
    steps, ending = _apply_faults(plan, faults, wire, lambda message: render_message(message, request))
    writer = _Writer(request, response, context.script.framing, coalesce=context.script.token_delay_ms == 0)
    writer.sse = wire.content_type == "text/event-stream"
    writer.slow = next((f.bytes_per_second for f in faults if isinstance(f, SlowLorisFault)), None)
    survive = any(isinstance(f, IgnoreDisconnectFault) for f in faults) or (
        context.slots_full() and any(isinstance(f, RunCancelledQueuedFault) for f in faults)
    )
    abandons = any(isinstance(f, AbandonUnderLoadFault) for f in faults)
    run = _run_steps(
        writer,
        _Pace(start, context.script.token_delay_ms / 1000.0),
        generation,
        plan,
        steps,
        ending,
        stalls.get("mid_stream"),
        survive,
        (lambda: len(context.state.generations) > generation.number) if abandons else None,
    )
    await _generate(context.state, generation, run, survive_disconnect=survive, slot=context.slot())
    if writer.broken:
        return response
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


async def answer_whole(
    request: web.Request,
    context: StubContext,
    generation: Generation,
    wire: WireFormat,
    body: Any,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A non-streamed answer, after the same status faults and header stall a stream would get."""
    refusal = await _before_headers(request, context.faults_for(generation), generation, wire)
    generation.finished = True
    return refusal if refusal is not None else web.json_response(body, headers=headers)


async def _before_headers(
    request: web.Request, faults: list[Fault], generation: Generation, wire: WireFormat
) -> web.Response | None:
    """The scripted HTTP error, if any (the request then ends here); a stall before headers, if any."""
    for fault in faults:
        if isinstance(fault, StatusFault):
            generation.finished = True
            return wire.error_response(fault.status, render_message(fault.message, request), dict(fault.headers))
    for fault in faults:
        if isinstance(fault, StallFault) and fault.phase == "before_headers":
            await asyncio.sleep(fault.seconds)
    return None


async def _generate(
    state: StubState,
    generation: Generation,
    run: Coroutine[Any, Any, bool],
    *,
    survive_disconnect: bool,
    slot: contextlib.AbstractAsyncContextManager[Any],
) -> None:
    """Run one generation, counting it as active while it runs.

    Normally a client disconnect cancels the handler, and with it the generation.
    With survive_disconnect the generation runs in its own task and keeps its
    slot busy to the end: the misbehaviour the cancel feature must catch.
    """

    async def tracked() -> None:
        state.queued += 1
        waiting = True
        try:
            async with slot:  # a queued generation whose client leaves meanwhile never starts (unless it survives)
                state.queued -= 1
                waiting = False
                await running()
        finally:
            state.queued -= waiting
            run.close()  # never started (its client left in the queue): closed, not left unawaited

    async def running() -> None:
        index = next(i for i in itertools.count() if i not in state.busy_slots)
        state.busy_slots.add(index)
        state.slot_tasks[index] = generation.number
        generation.began = True
        try:
            client_stayed = await run
            generation.finished = client_stayed
            generation.cancelled = not client_stayed
        except asyncio.CancelledError:
            generation.cancelled = True
            raise
        finally:
            state.busy_slots.discard(index)

    if not survive_disconnect:
        await tracked()
        return
    task = asyncio.ensure_future(tracked())
    state.background.add(task)
    task.add_done_callback(state.background.discard)
    await asyncio.shield(task)


_COALESCE_BYTES = 32 * 1024


class _Writer:
    """Writes frames in the script's chunk size; remembers a broken connection instead of raising.

    With `coalesce` (no pacing asked for), frames are gathered into writes of up
    to 32 KiB: one await per frame would make the stub, not the client, the
    bottleneck of every throughput measurement.
    """

    __slots__ = (
        "_buffer",
        "_buffered",
        "_chunk",
        "_coalesce",
        "_request",
        "_response",
        "broken",
        "framing",
        "slow",
        "sse",
    )

    def __init__(self, request: web.Request, response: web.StreamResponse, framing: Framing, coalesce: bool) -> None:
        self._request = request
        self._response = response
        self._chunk = framing.chunk_size
        self._coalesce = coalesce and framing.chunk_size is None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self.framing = framing
        self.broken = False
        self.sse = True
        self.slow: float | None = None
        """Bytes per second, one byte at a time (a slow-loris engine); None writes at full speed."""

    async def send(self, data: bytes) -> None:
        if not self._coalesce:
            await self.write(data)
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= _COALESCE_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            await self.write(data)

    async def write(self, data: bytes) -> None:
        if self.broken:
            return
        try:
            if self.slow is not None:
                for start in range(len(data)):
                    await self._response.write(data[start : start + 1])
                    await asyncio.sleep(1.0 / self.slow)
                return
            if self._chunk is None:
                await self._response.write(data)
                return
            for start in range(0, len(data), self._chunk):
                await self._response.write(data[start : start + self._chunk])
        except (ConnectionError, RuntimeError):
            self.broken = True

    def abort(self, *, reset: bool = False) -> None:
        """Close the TCP connection without ending the HTTP body: the client sees a truncated stream.

        With `reset`, the connection is reset (RST, SO_LINGER 0) instead of closed (FIN).
        """
        self.broken = True
        transport = self._request.transport
        if transport is None:
            return
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return
        transport.close()


@dataclass(frozen=True, slots=True)
class _Pace:
    start: float
    """Event-loop time the schedule counts from: when generation began, or when a stall before it ended."""
    delay: float
    """Seconds per token, the first included."""


async def _run_steps(
    writer: _Writer,
    pace: _Pace,
    generation: Generation,
    plan: StreamPlan,
    steps: list[_Step],
    ending: _Ending | None,
    stall: StallFault | None,
    survive_disconnect: bool,
    abandon: Callable[[], bool] | None = None,
) -> bool:
    """Write every step at the script's pace; False if the client left and generation stopped. With
    `abandon`, the stream ends, its final frames unsent, before the first token written while it says so.

    Token k is due `delay * (k + 1)` after the generation began, on a fixed cadence:
    sleeping `delay` after each write would add the write and scheduling time of every
    token to the next gap, and counting from the first write would add the time the
    stub took to parse the request and send headers to the first token. A token is never
    written early: on the loop `conform stub` runs (`precise_event_loop`) it is written
    when due; asyncio's default loop rounds every wait up to a whole millisecond.
    """
    # Keep-alives are SSE comments; NDJSON has no such thing, so an NDJSON engine never sends one.
    keepalive_every = writer.framing.keepalive_every if writer.sse else None
    loop = asyncio.get_running_loop()
    delay = pace.delay
    due = pace.start
    written_at = generation.written_at
    for number, step in enumerate(steps):
        if abandon is not None and abandon():
            break
        if step.token is not None:
            if stall is not None and step.token == stall.at_token:
                await writer.flush()
                await asyncio.sleep(stall.seconds)
                due = loop.time()
            if delay:
                due += delay
                await asyncio.sleep(max(0.0, due - loop.time()))
            generation.tokens_sent += 1
        if keepalive_every and number % keepalive_every == 0:
            await writer.send(_keepalive(writer.framing))
        data = _step_bytes(plan, step)
        if ending is not None and number == len(steps) - 1:
            await writer.flush()
            await writer.write(data[: max(1, len(data) // 2)])
            writer.abort(reset=ending.reset)
            return True
        if written_at is not None and step.token is not None:
            written_at.append(loop.time())
        await writer.send(data)
        if writer.broken and not survive_disconnect:
            return False
    await writer.flush()
    return not writer.broken or survive_disconnect
