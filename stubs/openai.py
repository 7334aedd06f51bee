"""The OpenAI wire format (docs/wires.md §3, §6), once, for the three engines that speak it.

`OpenAIFlavour` holds what differs between OpenAI, vLLM and llama-swap: error
bodies, what follows an in-stream error, token ids, fingerprints, who owns the
models. Everything else — chunk layout, the role chunk, the finish chunk with
an empty delta, the usage chunk with empty ``choices`` (only with
``stream_options.include_usage``), ``data: [DONE]`` — is written here, so the
openai SDK accepts every flavour's stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

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
from .structured import StubCall, planned_calls, streamed_pieces, tool_ask_openai, violations
from .tokens import StubToken

__all__ = [
    "OPENAI",
    "VLLM",
    "OpenAIFlavour",
    "base_app",
    "create_openai_app",
    "create_vllm_app",
    "generate",
    "model_entry",
    "openai_error",
]

ErrorBody = Callable[[int, str, str | None], Any]
"""(status, message, wire_version) -> the engine's JSON error body."""

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
    503: "server_overloaded",
}


def openai_error(status: int, message: str, _version: str | None = None) -> dict[str, Any]:
    code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(status)
    return {
        "error": {"message": message, "type": _OPENAI_TYPES.get(status, "server_error"), "param": None, "code": code}
    }


_VLLM_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    500: "InternalServerError",
    501: "NotImplementedError",
}


def vllm_error(status: int, message: str, version: str | None = None) -> dict[str, Any]:
    """Nested since 0.10.1 (PR #22099), flat with ``object: "error"`` before."""
    try:
        kind = _VLLM_TYPES.get(status) or HTTPStatus(status).phrase.replace(" ", "")
    except ValueError:
        kind = "Error"
    fields = {"message": message, "type": kind, "param": None, "code": status}
    if version is not None and _release(version) < (0, 10, 1):
        return {"object": "error", **fields}
    return {"error": fields}


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class OpenAIFlavour:
    engine: str
    owned_by: str
    error_body: ErrorBody
    fingerprint: str | None
    """system_fingerprint on every chunk (None: the engine sends none)."""
    done_after_error: bool = False
    """vLLM keeps sending ``data: [DONE]`` after an in-stream error."""
    token_ids: bool = False
    """Honours ``return_token_ids`` (vLLM ≥ 0.10.2)."""
    upstream_error: ErrorBody | None = None
    """A proxy's body for errors its upstream raised (validation, context), passed through untouched."""


OPENAI = OpenAIFlavour("openai", "system", openai_error, fingerprint="fp_conform0")
VLLM = OpenAIFlavour("vllm", "vllm", vllm_error, fingerprint=None, done_after_error=True, token_ids=True)

FLAVOUR_KEY = web.AppKey("conform_openai_flavour", OpenAIFlavour)


class OpenAIWire:
    """The frames of one stream (one request: its id, model and options fixed)."""

    content_type = "text/event-stream"

    def __init__(self, context: StubContext, flavour: OpenAIFlavour, *, chat: bool, model: str, number: int) -> None:
        self._framing: Framing = context.script.framing
        self._version = context.script.wire_version
        self._flavour = flavour
        self._chat = chat
        kind, prefix = ("chat.completion.chunk", "chatcmpl") if chat else ("text_completion", "cmpl")
        fingerprint = f',"system_fingerprint":{dumps(flavour.fingerprint)}' if flavour.fingerprint else ""
        created = int(context.started)
        self.id = f"{prefix}-conform{number}"
        self._head = (
            f'{{"id":"{self.id}","object":"{kind}","created":{created},"model":{dumps(model)}{fingerprint},"choices":['
        )

    def error_response(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return web.json_response(
            self._flavour.error_body(status, message, self._version), status=status, headers=headers
        )

    def error_frame(self, message: str) -> bytes:
        frame = encode_sse(dumps({"error": error_fields(self._flavour, 500, message, self._version)}), self._framing)
        return frame + self.done() if self._flavour.done_after_error else frame

    def legacy_error_frame(self, message: str) -> bytes:
        return f"error: {dumps(self._flavour.error_body(500, message, self._version))}\n\n".encode()

    def malformed_frame(self) -> bytes:
        return encode_sse(self._head + '{"index":0,"delta":{"content":" bro', self._framing)

    def _choice(self, text: str | None, finish: str | None, extra: str = "") -> str:
        if self._chat:
            delta = "{}" if text is None else f'{{"content":{dumps(text)}}}'
            body = f'"delta":{delta}'
        else:
            body = f'"text":{dumps(text or "")}'
        return f'{{"index":0,{body},"logprobs":null,"finish_reason":{dumps(finish)}{extra}}}'

    def role_frame(self) -> bytes:
        """Chat's first chunk: the assistant role with empty content."""
        choice = '{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}'
        return encode_sse(f"{self._head}{choice}]}}", self._framing)

    def token_frame(self, token: StubToken, *, ids: bool, logprobs: bool) -> bytes:
        extra = f',"token_ids":[{token.id}]' if ids else ""
        choice = self._choice(token.text, None, extra)
        if logprobs:
            text, logprob = dumps(token.text), dumps(token.logprob)
            entry = f'"token":{text},"logprob":{logprob},"bytes":{dumps(list(token.text.encode()))}'
            probabilities = (
                f'{{"content":[{{{entry},"top_logprobs":[{{{entry}}}]}}]}}'
                if self._chat
                else f'{{"tokens":[{text}],"token_logprobs":[{logprob}]}}'
            )
            choice = choice.replace('"logprobs":null', f'"logprobs":{probabilities}')
        return encode_sse(f"{self._head}{choice}]}}", self._framing)

    def call_frames(self, calls: list[StubCall], faults: list[Fault]) -> list[bytes]:
        """Each call as chat streams it: a delta with its id, type and name, then its arguments in pieces."""
        frames = []
        for k, call in enumerate(calls):
            head = {"index": k, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
            pieces = [head] + [{"index": k, "function": {"arguments": p}} for p in streamed_pieces(call, faults)]
            for piece in pieces:
                choice = f'{{"index":0,"delta":{{"tool_calls":[{dumps(piece)}]}},"logprobs":null,"finish_reason":null}}'
                frames.append(encode_sse(f"{self._head}{choice}]}}", self._framing))
        return frames

    def finish_frame(self, reason: str) -> bytes:
        return encode_sse(f"{self._head}{self._choice(None, reason)}]}}", self._framing)

    def usage_frame(self, prompt: int, completion: int) -> bytes:
        usage = dumps({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
        return encode_sse(f'{self._head}],"usage":{usage}}}', self._framing)

    def done(self) -> bytes:
        return encode_sse("[DONE]", self._framing)


def error_fields(flavour: OpenAIFlavour, status: int, message: str, version: str | None) -> Any:
    """The inside of the engine's ``error`` object (an in-stream error nests it under ``error``)."""
    body = flavour.error_body(status, message, version)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    if isinstance(body, dict) and body.get("object") == "error":
        return {k: v for k, v in body.items() if k != "object"}
    return {"message": message, "code": status}


@dataclass(frozen=True, slots=True)
class _Parsed:
    chat: bool
    model: str
    prompt: str
    max_tokens: int | None
    seed: int | None
    stream: bool
    include_usage: bool
    token_ids: bool
    logprobs: bool


def _parse(body: Any, chat: bool, flavour: OpenAIFlavour) -> _Parsed | Refusal:
    """The request's fields, or the refusal a real server would answer."""
    if not isinstance(body, dict):
        return Refusal(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return Refusal(400, "you must provide a model parameter")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return Refusal(400, "'messages' must be a non-empty array of objects")
        prompt = message_text(messages)
        budget = body.get("max_completion_tokens", body.get("max_tokens"))
    else:
        text = body.get("prompt")
        if not isinstance(text, str):
            return Refusal(400, "'prompt' must be a string")
        prompt = text
        budget = body.get("max_tokens", 16)
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        return Refusal(400, f"max_tokens must be a non-negative integer, got {budget!r}")
    seed = body.get("seed")
    options = body.get("stream_options")
    return _Parsed(
        chat=chat,
        model=model,
        prompt=prompt,
        max_tokens=budget,
        seed=seed if isinstance(seed, int) else None,
        stream=body.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        token_ids=flavour.token_ids and body.get("return_token_ids") is True,
        logprobs=bool(body.get("logprobs")),
    )


def models_of(context: StubContext) -> list[str]:
    return [context.model]


def generation_handler(chat: bool) -> Handler:
    async def handle(request: web.Request, context: StubContext) -> web.StreamResponse:
        return await generate(request, context, request.app[FLAVOUR_KEY], chat, models_of(context))

    return generation_route(handle)


async def generate(
    request: web.Request, context: StubContext, flavour: OpenAIFlavour, chat: bool, models: list[str]
) -> web.StreamResponse:
    """One chat or completions request: validate like the engine, then stream or answer whole."""
    body = await record_request(request)
    version = context.script.wire_version

    def fail(status: int, message: str) -> web.Response:
        body = (flavour.upstream_error or flavour.error_body)(status, message, version)
        return web.json_response(body, status=status)

    if context.script.health == "loading":
        return fail(503, "Loading model")
    parsed = _parse(body, chat, flavour)
    if isinstance(parsed, Refusal):
        return fail(parsed.status, parsed.message)
    if not context.serves(parsed.model, models):
        return fail(404, f"The model `{parsed.model}` does not exist.")
    if prompt_tokens(parsed.prompt) > context.ctx_size:
        return fail(400, f"This model's maximum context length is {context.ctx_size} tokens.")
    generation, tokens = await context.new_generation(request, parsed.prompt, parsed.seed, parsed.max_tokens)
    reason = "length" if generation.max_tokens == len(tokens) and tokens and not generation.stop_word else "stop"
    faults = context.faults_for(generation)
    ask = tool_ask_openai(body)
    calls = planned_calls(ask, faults, generation.number) if chat else []
    if calls:
        tokens, reason = [], "stop" if "wrong_finish" in violations(faults) else "tool_calls"
    elif ask.after_result and "empty_after_result" in violations(faults):
        tokens = []
    wire = OpenAIWire(context, flavour, chat=chat, model=parsed.model, number=generation.number)
    n_prompt = context.reported_prompt_tokens(parsed.prompt)
    if not parsed.stream:
        whole = _whole(wire, parsed, tokens, reason, n_prompt, context, flavour, calls)
        return await answer_whole(request, context, generation, wire, whole)
    final = [wire.role_frame()] if chat and not tokens else []
    final += wire.call_frames(calls, faults)
    final.append(wire.finish_frame(reason))
    if parsed.include_usage:
        final.append(wire.usage_frame(n_prompt, len(tokens)))
    final.append(wire.done())
    plan = StreamPlan(
        tokens,
        lambda token, _: wire.token_frame(token, ids=parsed.token_ids, logprobs=parsed.logprobs),
        final,
        lead=wire.role_frame() if chat else b"",
    )
    return await play_stream(request, context, generation, plan, wire)


def _whole(
    wire: OpenAIWire,
    parsed: _Parsed,
    tokens: list[StubToken],
    reason: str,
    n_prompt: int,
    context: StubContext,
    flavour: OpenAIFlavour,
    calls: list[StubCall],
) -> dict[str, Any]:
    text = "".join(t.text for t in tokens)
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
    if parsed.chat:
        choice["message"] = {"role": "assistant", "content": None if calls else text}
        if calls:
            choice["message"]["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
            ]
    else:
        choice["text"] = text
    if parsed.token_ids:
        choice["token_ids"] = [t.id for t in tokens]
    reply: dict[str, Any] = {
        "id": wire.id,
        "object": "chat.completion" if parsed.chat else "text_completion",
        "created": int(context.started),
        "model": parsed.model,
        "choices": [choice],
        "usage": {"prompt_tokens": n_prompt, "completion_tokens": len(tokens), "total_tokens": n_prompt + len(tokens)},
    }
    if flavour.fingerprint:
        reply["system_fingerprint"] = flavour.fingerprint
    return reply


def model_entry(context: StubContext, model: str, owned_by: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": int(context.started), "owned_by": owned_by}


async def list_models(request: web.Request) -> web.Response:
    context, flavour = request.app[STUB_KEY], request.app[FLAVOUR_KEY]
    data = [model_entry(context, m, flavour.owned_by) for m in models_of(context)]
    if flavour is VLLM:
        for entry in data:
            entry.update(root=entry["id"], parent=None, max_model_len=context.ctx_size, permission=[])
    return web.json_response({"object": "list", "data": data})


def base_app(context: StubContext, flavour: OpenAIFlavour) -> web.Application:
    """An application holding the context and flavour, answering unknown paths in the flavour's error body."""
    version = context.script.wire_version
    app = web.Application(
        middlewares=[
            stub_middleware(
                lambda status, message: web.json_response(flavour.error_body(status, message, version), status=status)
            )
        ]
    )
    app[STUB_KEY] = context
    app[FLAVOUR_KEY] = flavour
    return app


def create_app_for(context: StubContext, flavour: OpenAIFlavour) -> web.Application:
    """The generation routes and the model list of a single-model server; engines add their own routes."""
    app = base_app(context, flavour)
    app.router.add_post("/v1/chat/completions", generation_handler(chat=True))
    app.router.add_post("/v1/completions", generation_handler(chat=False))
    app.router.add_get("/v1/models", list_models)
    return app


def create_openai_app(context: StubContext) -> web.Application:
    return create_app_for(context, OPENAI)


async def _vllm_health(request: web.Request) -> web.Response:
    if request.app[STUB_KEY].script.health == "loading":
        return web.Response(status=503)
    return web.Response(status=200)


async def _vllm_version(request: web.Request) -> web.Response:
    return web.json_response({"version": request.app[STUB_KEY].script.build or "0.11.2"})


def create_vllm_app(context: StubContext) -> web.Application:
    app = create_app_for(context, VLLM)
    app.router.add_get("/health", _vllm_health)
    app.router.add_get("/ping", _vllm_health)
    app.router.add_get("/version", _vllm_version)
    return app
