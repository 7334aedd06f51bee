"""Ollama native wire format (docs/wires.md §9): NDJSON ``/api/generate`` and ``/api/chat``.

``application/x-ndjson``, one compact JSON object per line, no blank lines;
the last object has ``done: true``, ``done_reason``, counts and nanosecond
durations (and ``context`` on generate). Errors are ``{"error": "…"}`` with
the status, or one more such line once a stream has started.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from aiohttp import web

from ._engine import (
    STUB_KEY,
    StreamPlan,
    StubContext,
    answer_whole,
    dumps,
    generation_route,
    message_text,
    play_stream,
    prompt_tokens,
    record_request,
    stub_middleware,
)
from .structured import StubCall, planned_calls, tool_ask_openai, violations
from .tokens import StubToken

__all__ = ["create_app"]

VERSION = "0.12.6"


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _line(payload: dict[str, Any]) -> bytes:
    return (dumps(payload) + "\n").encode()


def _created_at() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


class OllamaWire:
    content_type = "application/x-ndjson"

    def __init__(self, model: str, chat: bool) -> None:
        self._model = model
        self._chat = chat
        self._head = f'{{"model":{dumps(model)},"created_at":"{_created_at()}",'

    def error_response(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return _error_response(status, message, headers)

    def error_frame(self, message: str) -> bytes:
        return _line({"error": message})

    def legacy_error_frame(self, message: str) -> bytes:
        return f"error: {message}\n".encode()  # not JSON: what a broken proxy in front of Ollama might send

    def malformed_frame(self) -> bytes:
        return (self._head + '"response":" bro\n').encode()

    def token_frame(self, token: StubToken) -> bytes:
        text = dumps(token.text)
        body = f'"message":{{"role":"assistant","content":{text}}}' if self._chat else f'"response":{text}'
        return f'{self._head}{body},"done":false}}\n'.encode()

    def calls_frame(self, calls: list[StubCall]) -> bytes:
        """Ollama streams calls whole, in a line of their own before the last."""
        return _line({**self._message(calls), "done": False})

    def _message(self, calls: list[StubCall], text: str = "") -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = [{"function": {"name": c.name, "arguments": c.input()}} for c in calls]
        return {"model": self._model, "created_at": _created_at(), "message": message}

    def final(
        self, tokens: list[StubToken], prompt: str, reason: str, whole: bool, calls: list[StubCall] | None = None
    ) -> dict[str, Any]:
        text = "".join(t.text for t in tokens) if whole else ""
        final: dict[str, Any] = {"model": self._model, "created_at": _created_at()}
        if self._chat:
            final = self._message(calls or [], text)
        else:
            final["response"] = text
        n = len(tokens)
        final.update(
            done=True,
            done_reason=reason,
            total_duration=(n + 2) * 1_000_000,
            load_duration=1_000_000,
            prompt_eval_count=prompt_tokens(prompt),
            prompt_eval_duration=500_000,
            eval_count=n,
            eval_duration=n * 1_000_000,
        )
        if not self._chat:
            final["context"] = [t.id for t in tokens]
        return final


async def _generate(request: web.Request, context: StubContext, chat: bool) -> web.StreamResponse:
    body = await record_request(request)
    if not isinstance(body, dict):
        return _error_response(400, "invalid request body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _error_response(400, "model is required")
    if not context.serves(model):
        return _error_response(404, f"model '{model}' not found")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error_response(400, "messages must be an array of objects")
        prompt = message_text(messages)
    else:
        raw_prompt = body.get("prompt", "")
        if not isinstance(raw_prompt, str):
            return _error_response(400, "prompt must be a string")
        prompt = raw_prompt
    options = body.get("options") if isinstance(body.get("options"), dict) else {}
    assert isinstance(options, dict)
    seed, budget = options.get("seed"), options.get("num_predict", -1)
    if not isinstance(budget, int):
        return _error_response(400, "option num_predict must be an integer")
    limit = None if budget < 0 else budget
    generation, tokens = await context.new_generation(request, prompt, seed if isinstance(seed, int) else None, limit)
    reason = "length" if tokens and len(tokens) == generation.max_tokens and not generation.stop_word else "stop"
    faults = context.faults_for(generation)
    ask = tool_ask_openai(body)
    calls = planned_calls(ask, faults, generation.number) if chat else []
    if calls or (ask.after_result and "empty_after_result" in violations(faults)):
        tokens, reason = [], "stop"  # Ollama ends a call with done_reason stop: it has no reason of its own
    wire = OllamaWire(model, chat)
    if body.get("stream", True) is False:
        whole = wire.final(tokens, prompt, reason, whole=True, calls=calls)
        return await answer_whole(request, context, generation, wire, whole)
    final = [wire.calls_frame(calls)] if calls else []
    final.append(_line(wire.final(tokens, prompt, reason, whole=False)))
    plan = StreamPlan(tokens, lambda token, _: wire.token_frame(token), final)
    return await play_stream(request, context, generation, plan, wire)


def _model_entry(context: StubContext) -> dict[str, Any]:
    return {
        "name": context.model,
        "model": context.model,
        "modified_at": "2026-01-01T00:00:00Z",
        "size": 246587904,
        "digest": "5f1c9a3e2b7d4c6a8e0f1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "gemma3",
            "families": ["gemma3"],
            "parameter_size": "268M",
            "quantization_level": "Q4_K_M",
        },
    }


async def tags(request: web.Request) -> web.Response:
    return web.json_response({"models": [_model_entry(request.app[STUB_KEY])]})


async def running(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    entry = {
        **_model_entry(context),
        "expires_at": "2026-01-01T00:05:00Z",
        "size_vram": 0,
        "context_length": context.ctx_size,
    }
    return web.json_response({"models": [entry]})


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": request.app[STUB_KEY].script.build or VERSION})


async def root(request: web.Request) -> web.Response:
    return web.Response(text="Ollama is running")


def create_app(context: StubContext) -> web.Application:
    app = web.Application(middlewares=[stub_middleware(_error_response)])
    app[STUB_KEY] = context
    app.router.add_post("/api/generate", generation_route(functools.partial(_generate, chat=False)))
    app.router.add_post("/api/chat", generation_route(functools.partial(_generate, chat=True)))
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", running)
    app.router.add_get("/api/version", version)
    app.router.add_get("/", root)
    return app
