"""Text Generation Inference wire format (docs/wires.md §4): ``/generate_stream``, ``/generate``, compat ``/``.

axum SSE framing: ``data:{json}`` with no space after the colon. One event
per token; the last token's event also carries ``generated_text`` and
``details``; no terminator. Validation runs after the stream has started, so
a refused request on a streaming route is a 200 stream whose only event is
``{"error", "error_type": "validation"}``; on ``/generate`` it is a 422.
``POST /`` streams with ``"stream": true`` and otherwise answers a JSON
*array* (what the ``text-generation`` client expects).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from aiohttp import web

from ._engine import (
    STUB_KEY,
    Generation,
    StreamPlan,
    StubContext,
    answer_whole,
    dumps,
    encode_sse,
    generation_route,
    play_stream,
    prompt_tokens,
    record_request,
    stub_middleware,
)
from .script import Framing
from .tokens import StubToken

__all__ = ["create_app"]

VERSION = "3.3.7"

_ERROR_TYPES = {422: "validation", 424: "generation", 500: "incomplete_generation"}
_OWN_MESSAGES = {429: ("overloaded", "overloaded"), 503: ("unhealthy", "healthcheck")}
"""Statuses TGI answers only with its own message; a scripted one with other words is from a proxy in front."""


def _error_body(status: int, message: str) -> dict[str, str]:
    """TGI's ``{"error", "error_type"}``; statuses TGI itself never uses get no ``error_type``."""
    body = {"error": message}
    words, own_type = _OWN_MESSAGES.get(status, ("", ""))
    error_type = _ERROR_TYPES.get(status) or (own_type if words and words in message.lower() else None)
    if error_type:
        body["error_type"] = error_type
    return body


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(_error_body(status, message), status=status, headers=headers)


class TgiWire:
    content_type = "text/event-stream"

    def __init__(self, framing: Framing) -> None:
        self._framing = framing.model_copy(update={"space_after_colon": False})  # axum writes `data:{…}`

    def event(self, payload: str) -> bytes:
        return encode_sse(payload, self._framing)

    def error_response(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return _error_response(status, message, headers)

    def error_frame(self, message: str) -> bytes:
        return self.event(dumps(_error_body(424, message)))

    def legacy_error_frame(self, message: str) -> bytes:
        return f"error:{dumps(_error_body(500, message))}\n\n".encode()

    def malformed_frame(self) -> bytes:
        return self.event('{"index":1,"token":{"id":5,"text":" bro')

    def token_frame(self, token: StubToken, position: int, final: str = "") -> bytes:
        body = f'{{"id":{token.id},"text":{dumps(token.text)},"logprob":{dumps(token.logprob)},"special":false}}'
        tail = final or '"generated_text":null,"details":null'
        return self.event(f'{{"index":{position + 1},"token":{body},{tail}}}')


class _Request(NamedTuple):
    prompt: str
    max_new_tokens: int | None
    seed: int | None
    details: bool


def _validate(body: Any) -> _Request | str:
    """The request, or the validation error message TGI would give (validation.rs)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
        return "Input validation error: `inputs` must be a string"
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        return "Input validation error: `parameters` must be an object"
    temperature = parameters.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or temperature <= 0):
        return "Input validation error: `temperature` must be strictly positive"
    top_p = parameters.get("top_p")
    if top_p is not None and (not isinstance(top_p, int | float) or not 0 < top_p < 1):
        return "Input validation error: `top_p` must be > 0.0 and < 1.0"
    budget = parameters.get("max_new_tokens")
    if budget is not None and (not isinstance(budget, int) or budget <= 0):
        return "Input validation error: `max_new_tokens` must be strictly positive"
    seed = parameters.get("seed")
    return _Request(body["inputs"], budget, seed if isinstance(seed, int) else None, bool(parameters.get("details")))


def _details(tokens: list[StubToken], generation: Generation, prompt: str, whole: bool) -> dict[str, Any]:
    seed = generation.seed
    details: dict[str, Any] = {
        "finish_reason": "stop_sequence" if generation.stop_word else "length",
        "generated_tokens": len(tokens),
        "seed": seed,
        "input_length": prompt_tokens(prompt),
    }
    if whole:
        details["prefill"] = []
        details["tokens"] = [{"id": t.id, "text": t.text, "logprob": t.logprob, "special": False} for t in tokens]
    return details


async def _refuse_in_stream(request: web.Request, wire: TgiWire, message: str) -> web.StreamResponse:
    """What TGI does with an invalid streaming request: a 200 stream with one validation error event."""
    response = web.StreamResponse(headers={"Content-Type": wire.content_type, "Cache-Control": "no-cache"})
    await response.prepare(request)
    await response.write(wire.event(dumps({"error": message, "error_type": "validation"})))
    await response.write_eof()
    return response


def _route(stream: bool | None) -> Any:
    """`stream`: True for /generate_stream, False for /generate, None for `/` (the body decides)."""

    return generation_route(functools.partial(_generate, stream=stream))


async def _generate(request: web.Request, context: StubContext, stream: bool | None) -> web.StreamResponse:
    body = await record_request(request)
    compat = stream is None
    streaming = bool(body.get("stream")) if compat and isinstance(body, dict) else bool(stream)
    wire = TgiWire(context.script.framing)
    parsed = _validate(body)
    if isinstance(parsed, str):
        return await _refuse_in_stream(request, wire, parsed) if streaming else _error_response(422, parsed)
    generation, tokens = await context.new_generation(request, parsed.prompt, parsed.seed, parsed.max_new_tokens)
    text = "".join(t.text for t in tokens)
    if not streaming:
        result = {"generated_text": text, "details": _details(tokens, generation, parsed.prompt, whole=True)}
        return await answer_whole(request, context, generation, wire, [result] if compat else result)
    if not tokens:
        return _error_response(422, "Input validation error: `max_new_tokens` must be strictly positive")
    details = dumps(_details(tokens, generation, parsed.prompt, whole=False)) if parsed.details else "null"
    last = len(tokens) - 1
    plan = StreamPlan(
        tokens[:last],
        wire.token_frame,
        [wire.token_frame(tokens[last], last, f'"generated_text":{dumps(text)},"details":{details}')],
    )
    return await play_stream(request, context, generation, plan, wire)


async def health(request: web.Request) -> web.Response:
    if request.app[STUB_KEY].script.health == "loading":
        return _error_response(503, "unhealthy")
    return web.Response(status=200)


async def info(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    return web.json_response(
        {
            "model_id": context.model,
            "model_sha": "0123456789abcdef0123456789abcdef01234567",
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": 128,
            "max_best_of": 2,
            "max_stop_sequences": 4,
            "max_input_tokens": context.ctx_size - 1,
            "max_total_tokens": context.ctx_size,
            "validation_workers": 2,
            "max_client_batch_size": 4,
            "router": "text-generation-router",
            "version": context.script.build or VERSION,
            "sha": "conform-stub",
            "docker_label": None,
        }
    )


def create_app(context: StubContext) -> web.Application:
    app = web.Application(middlewares=[stub_middleware(_error_response)])
    app[STUB_KEY] = context
    app.router.add_post("/", _route(None))
    app.router.add_post("/generate", _route(False))
    app.router.add_post("/generate_stream", _route(True))
    app.router.add_get("/health", health)
    app.router.add_get("/info", info)
    return app
