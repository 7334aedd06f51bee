"""Anthropic Messages API wire format (docs/wires.md §7): named SSE events, Anthropic's error envelope.

Every event has an ``event:`` line equal to its JSON ``type``; the order is
``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``
per token, ``content_block_stop``, ``message_delta`` (cumulative usage,
``stop_reason``), ``message_stop``; no ``[DONE]``. Errors are
``{"type":"error","error":{"type","message"},"request_id"}`` with a
``request-id`` header; an error in a started stream is ``event: error``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from aiohttp import web

from ._engine import (
    STUB_KEY,
    Refusal,
    StreamPlan,
    StubContext,
    answer_whole,
    dumps,
    encode_sse,
    generation_route,
    message_text,
    play_stream,
    prompt_tokens,
    record_request,
    stub_middleware,
)
from .script import Fault, Framing
from .structured import StubCall, planned_calls, streamed_pieces, tool_ask_anthropic, violations
from .tokens import StubToken

__all__ = ["create_app"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    request_id = "req_conform_error"
    body = {"type": "error", "error": {"type": _error_type(status), "message": message}, "request_id": request_id}
    return web.json_response(body, status=status, headers={"request-id": request_id, **(headers or {})})


class AnthropicWire:
    content_type = "text/event-stream"

    def __init__(self, framing: Framing) -> None:
        self._framing = framing

    def event(self, payload: dict[str, Any]) -> bytes:
        return encode_sse(dumps(payload), self._framing, event=payload["type"])

    def error_response(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return _error_response(status, message, headers)

    def error_frame(self, message: str) -> bytes:
        return self.event({"type": "error", "error": {"type": "api_error", "message": message}})

    def legacy_error_frame(self, message: str) -> bytes:
        return f"error: {dumps({'type': 'error', 'error': {'type': 'api_error', 'message': message}})}\n\n".encode()

    def malformed_frame(self) -> bytes:
        return encode_sse(
            '{"type":"content_block_delta","index":0,"delta":{"type":"text_del', self._framing, "content_block_delta"
        )

    def call_events(self, calls: list[StubCall], faults: list[Fault]) -> list[bytes]:
        """Each call as its own content block: a tool_use start with empty input, its arguments as
        input_json_delta pieces, the block's stop."""
        events = []
        for k, call in enumerate(calls):
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            events.append(self.event({"type": "content_block_start", "index": k, "content_block": block}))
            events += [
                self.event(
                    {
                        "type": "content_block_delta",
                        "index": k,
                        "delta": {"type": "input_json_delta", "partial_json": p},
                    }
                )
                for p in streamed_pieces(call, faults)
            ]
            events.append(self.event({"type": "content_block_stop", "index": k}))
        return events

    def token_frame(self, token: StubToken) -> bytes:
        delta = f'{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{dumps(token.text)}}}}}'
        return encode_sse(delta, self._framing, event="content_block_delta")


def _message(
    model: str, number: int, content: list[dict[str, Any]], stop: str | None, usage: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": f"msg_conform{number}",
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": model,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


class _Request(NamedTuple):
    model: str
    prompt: str
    max_tokens: int


def _parse(body: Any) -> _Request | Refusal:
    """The request's fields, or the error the API would answer."""
    if not isinstance(body, dict):
        return Refusal(400, "The request body is not valid JSON.")
    model, budget, messages = body.get("model"), body.get("max_tokens"), body.get("messages")
    if not isinstance(model, str) or not model:
        return Refusal(400, "model: Field required")
    if not isinstance(budget, int) or budget < 1:
        return Refusal(400, "max_tokens: Field required (an integer of at least 1)")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return Refusal(400, "messages: Field required (a non-empty array)")
    return _Request(model, message_text(messages), budget)


async def count_tokens(request: web.Request) -> web.Response:
    """``/v1/messages/count_tokens``: the input tokens a Messages request of this body would take."""
    body = await record_request(request)
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return _error_response(400, "messages: Field required (a non-empty array)")
    return web.json_response({"input_tokens": prompt_tokens(message_text(messages))})


async def _messages(request: web.Request, context: StubContext) -> web.StreamResponse:
    body = await record_request(request)
    if "anthropic-version" not in request.headers:
        return _error_response(400, "anthropic-version: header is required")
    parsed = _parse(body)
    if isinstance(parsed, Refusal):
        return _error_response(parsed.status, parsed.message)
    model, prompt, budget = parsed.model, parsed.prompt, parsed.max_tokens
    if not context.serves(model):
        return _error_response(404, f"model: {model}")
    if prompt_tokens(prompt) > context.ctx_size:
        return _error_response(400, f"prompt is too long: {prompt_tokens(prompt)} tokens > {context.ctx_size} maximum")
    generation, tokens = await context.new_generation(request, prompt, None, budget)  # the API has no seed
    stop = "max_tokens" if tokens and len(tokens) == generation.max_tokens else "end_turn"
    if generation.stop_word:
        stop = "stop_sequence"
    faults = context.faults_for(generation)
    ask = tool_ask_anthropic(body)
    calls = planned_calls(ask, faults, generation.number)
    if calls:
        tokens, stop = [], "end_turn" if "wrong_finish" in violations(faults) else "tool_use"
    elif ask.after_result and "empty_after_result" in violations(faults):
        tokens = []
    n_prompt = context.reported_prompt_tokens(prompt)
    wire = AnthropicWire(context.script.framing)
    if body.get("stream") is not True:
        text = "".join(t.text for t in tokens)
        usage = {"input_tokens": n_prompt, "output_tokens": len(tokens)}
        content = (
            [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input()} for c in calls]
            if calls
            else [{"type": "text", "text": text}]
        )
        message = _message(model, generation.number, content, stop, usage)
        headers = {"request-id": f"req_conform{generation.number}"}
        return await answer_whole(request, context, generation, wire, message, headers)
    start = _message(model, generation.number, [], None, {"input_tokens": n_prompt, "output_tokens": 1})
    opening = wire.event({"type": "message_start", "message": start})
    text_block = wire.event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    lead = opening + text_block + wire.event({"type": "ping"})
    if calls:
        blocks = [opening + wire.event({"type": "ping"}), *wire.call_events(calls, faults)]
    else:
        blocks = [(b"" if tokens else lead) + wire.event({"type": "content_block_stop", "index": 0})]
    final = [
        *blocks,
        wire.event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": generation.stop_word},
                "usage": {"output_tokens": len(tokens)},
            }
        ),
        wire.event({"type": "message_stop"}),
    ]
    plan = StreamPlan(tokens, lambda token, _: wire.token_frame(token), final, lead=lead)
    return await play_stream(request, context, generation, plan, wire)


async def models(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    entry = {"type": "model", "id": context.model, "display_name": context.model, "created_at": "2026-01-01T00:00:00Z"}
    return web.json_response({"data": [entry], "has_more": False, "first_id": context.model, "last_id": context.model})


messages_route = generation_route(_messages)
"""The /v1/messages handler, for a server that speaks this wire besides its own (llama.cpp)."""


def create_app(context: StubContext) -> web.Application:
    app = web.Application(middlewares=[stub_middleware(_error_response)])
    app[STUB_KEY] = context
    app.router.add_post("/v1/messages", messages_route)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", models)
    return app
