"""The built-in echo engine: streams the prompt back, word by word, at a scripted per-token delay.

Zero dependencies and fully predictable, for pipeline smoke tests and as the
target in docs (``conform stub echo --token-delay-ms 20``). Its wire format is
conform's own, kept as small as an engine's can be:

- ``POST /generate`` ``{"prompt", "max_tokens"?, "seed"?, "stream"?}``; the words
  of the prompt (leading whitespace kept) repeat until ``max_tokens``, or are
  sent once when it is absent;
- ``text/event-stream``: ``data: {"index","id","text"}`` per token, then
  ``data: {"done":true,"finish_reason","usage":{"prompt_tokens","completion_tokens"}}``;
- errors ``{"error":{"code","message"}}``; ``GET /health`` ``{"status":"ok"}``;
  ``GET /version`` ``{"version","model"}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ._engine import (
    STUB_KEY,
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
from .tokens import StubToken, echo_tokens

__all__ = ["create_app"]

VERSION = "echo-1"


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message}}


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(_error_body(status, message), status=status, headers=headers)


class EchoWire:
    content_type = "text/event-stream"

    def __init__(self, framing: Framing) -> None:
        self._framing = framing

    def error_response(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return _error_response(status, message, headers)

    def error_frame(self, message: str) -> bytes:
        return encode_sse(dumps(_error_body(500, message)), self._framing)

    def legacy_error_frame(self, message: str) -> bytes:
        return f"error: {dumps(_error_body(500, message))}\n\n".encode()

    def malformed_frame(self) -> bytes:
        return encode_sse('{"index":0,"text":" bro', self._framing)

    def token_frame(self, token: StubToken, index: int) -> bytes:
        return encode_sse(f'{{"index":{index},"id":{token.id},"text":{dumps(token.text)}}}', self._framing)

    def done_frame(self, reason: str, prompt: int, completion: int) -> bytes:
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        return encode_sse(dumps({"done": True, "finish_reason": reason, "usage": usage}), self._framing)


async def _generate(request: web.Request, context: StubContext) -> web.StreamResponse:
    body = await record_request(request)
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return _error_response(400, '"prompt" must be a string')
    prompt: str = body["prompt"]
    budget, seed = body.get("max_tokens"), body.get("seed")
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        return _error_response(400, '"max_tokens" must be a non-negative integer')
    if prompt_tokens(prompt) > context.ctx_size:
        return _error_response(
            400, f"the prompt has {prompt_tokens(prompt)} words, over the limit of {context.ctx_size}"
        )
    words = prompt_tokens(prompt)
    generation, tokens = await context.new_generation(
        request, prompt, seed if isinstance(seed, int) else None, words if budget is None else budget
    )
    reason = "length" if budget is not None else "stop"
    wire = EchoWire(context.script.framing)
    if body.get("stream", True) is False:
        usage = {"prompt_tokens": words, "completion_tokens": len(tokens)}
        whole = {"text": "".join(t.text for t in tokens), "finish_reason": reason, "usage": usage}
        return await answer_whole(request, context, generation, wire, whole)
    plan = StreamPlan(tokens, wire.token_frame, [wire.done_frame(reason, words, len(tokens))])
    return await play_stream(request, context, generation, plan, wire)


async def health(request: web.Request) -> web.Response:
    if request.app[STUB_KEY].script.health == "loading":
        return _error_response(503, "Loading model")
    return web.json_response({"status": "ok"})


async def version(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    return web.json_response({"version": context.script.build or VERSION, "model": context.model})


def create_app(context: StubContext) -> web.Application:
    context.generator = echo_tokens
    app = web.Application(middlewares=[stub_middleware(_error_response)])
    app[STUB_KEY] = context
    app.router.add_post("/generate", generation_route(_generate))
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
    return app
