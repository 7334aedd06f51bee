"""llama.cpp server (`llama-server`) wire format: /completion SSE, /health, /props, /slots, /v1/models.

Frames follow docs/wires.md §2: one ``data: {json}`` event per token with
``content``, ``tokens`` and ``stop: false``; a final event with ``stop: true``,
empty content, ``stop_type``, ``generation_settings`` and ``timings``; no
``[DONE]``. Errors are ``{"error": {"code", "message", "type"}}`` with the
status equal to ``code``.
"""

from __future__ import annotations

from typing import Any

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
from .anthropic import messages_route
from .openai import FLAVOUR_KEY, OPENAI, generation_handler
from .responses import responses_route
from .script import MisreportLogprobsFault, StaleMetricsFault
from .tokens import VOCABULARY, StubToken, detokenize, tokenize

__all__ = ["create_app"]

BUILD = "b6000-conform-stub"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "type": _ERROR_TYPES.get(status, "server_error")}}


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(_error_body(status, message), status=status, headers=headers)


class LlamaCppWire:
    content_type = "text/event-stream"

    def __init__(self, context: StubContext) -> None:
        self._framing = context.script.framing
        misreport = next((f for f in context.script.faults if isinstance(f, MisreportLogprobsFault)), None)
        self._misreport = misreport.how if misreport is not None else None

    def error_response(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return _error_response(status, message, headers)

    def error_frame(self, message: str) -> bytes:
        return encode_sse(dumps(_error_body(500, message)), self._framing)

    def legacy_error_frame(self, message: str) -> bytes:
        # Builds before the late-2025 rewrite wrote `error: {...}`, which is not an SSE field.
        return f"error: {dumps(_error_body(500, message))}\n\n".encode()

    def malformed_frame(self) -> bytes:
        return encode_sse('{"index":0,"content":" broken","tokens":[1', self._framing)

    def token_frame(self, token: StubToken, position: int, prompt_tokens: int, n_probs: int = 0) -> bytes:
        # Formatted, not json.dumps of a dict: this runs once per token and bounds the stub's throughput.
        text = dumps(token.text)
        probabilities = ""
        if n_probs > 0:
            probabilities = f',"completion_probabilities":[{dumps(probability(token, n_probs, self._misreport))}]'
        frame = (
            f'{{"index":0,"content":{text},"tokens":[{token.id}],"stop":false,"id_slot":0,'
            f'"tokens_predicted":{position + 1},"tokens_evaluated":{prompt_tokens}{probabilities}}}'
        )
        return encode_sse(frame, self._framing)


def probability(token: StubToken, n_probs: int, misreport: str | None = None) -> dict[str, Any]:
    """A token's completion_probabilities entry: its log-probability, and the `n_probs` most likely tokens at
    its position (itself first, then others less likely), as a misreport_logprobs fault may break them."""
    logprob = abs(token.logprob) + 0.5 if misreport == "positive" else token.logprob
    top = [(token.id, token.text, logprob)]
    for k in range(1, n_probs):
        pick = (token.id - 100 + k) % len(VOCABULARY)
        top.append((100 + pick, VOCABULARY[pick], logprob - 0.5 * k))
    if misreport == "unsorted":
        top.reverse()
    if misreport == "short":
        top = top[:-1]
    listed = [{"id": i, "token": t, "bytes": list(t.encode()), "logprob": lp} for i, t, lp in top]
    entry = {"id": token.id, "token": token.text, "bytes": list(token.text.encode()), "logprob": logprob}
    return {**entry, "top_logprobs": listed}


def _settings(body: dict[str, Any], seed: int, n_predict: int) -> dict[str, Any]:
    return {
        "seed": seed,
        "temperature": body.get("temperature", 0.8),
        "top_k": body.get("top_k", 40),
        "top_p": body.get("top_p", 0.95),
        "min_p": body.get("min_p", 0.05),
        "n_predict": n_predict,
        "stop": body.get("stop", []),
        "cache_prompt": body.get("cache_prompt", True),
    }


def _final(
    context: StubContext,
    body: dict[str, Any],
    tokens: list[StubToken],
    generation: Generation,
    prompt: str,
    stream: bool,
) -> dict[str, Any]:
    n, seed = len(tokens), generation.seed
    stop_type = "word" if generation.stop_word else "limit" if n == generation.max_tokens else "eos"
    n_probs = int(body.get("n_probs") or 0)
    extra: dict[str, Any] = {}
    if n_probs > 0 and not stream:
        misreport = next((f.how for f in context.script.faults if isinstance(f, MisreportLogprobsFault)), None)
        drift = [t._replace(logprob=t.logprob - 0.1) for t in tokens] if misreport == "drift" else tokens
        extra["completion_probabilities"] = [probability(t, n_probs) for t in drift]
    return {
        **extra,
        "index": 0,
        "content": "" if stream else "".join(t.text for t in tokens),
        "tokens": [] if stream else [t.id for t in tokens],
        "id_slot": 0,
        "stop": True,
        "model": context.answering_model(body.get("model")),
        "tokens_predicted": n,
        "tokens_evaluated": context.reported_prompt_tokens(prompt),
        "generation_settings": _settings(body, seed, n),
        "prompt": prompt,
        "has_new_line": any("\n" in t.text for t in tokens),
        "truncated": False,
        "stop_type": stop_type,
        "stopping_word": generation.stop_word or "",
        "tokens_cached": 0,
        "timings": {
            "cache_n": 0,
            "prompt_n": context.reported_prompt_tokens(prompt),
            "prompt_ms": 1.0,
            "predicted_n": n,
            "predicted_ms": float(n) * (context.script.token_delay_ms or 0.1),
        },
    }


async def _completion(request: web.Request, context: StubContext) -> web.StreamResponse:
    body = await record_request(request)
    wire = LlamaCppWire(context)
    if context.script.health == "loading":
        return wire.error_response(503, "Loading model", {})
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return wire.error_response(400, '"prompt" must be a string', {})
    prompt: str = body["prompt"]
    n_predict = body.get("n_predict", -1)
    if not isinstance(n_predict, int):
        return wire.error_response(400, '"n_predict" must be an integer', {})
    n_ctx = context.ctx_size // context.total_slots
    if prompt_tokens(prompt) > n_ctx:
        message = f"request ({prompt_tokens(prompt)} tokens) exceeds the available context size ({n_ctx} tokens)"
        body = _error_body(400, message + ", try increasing it")
        body["error"].update(type="exceed_context_size_error", n_prompt_tokens=prompt_tokens(prompt), n_ctx=n_ctx)
        return web.json_response(body, status=400)
    seed = body.get("seed")
    generation, tokens = await context.new_generation(
        request, prompt, seed if isinstance(seed, int) else None, n_predict
    )
    if not body.get("stream", False):
        final = _final(context, body, tokens, generation, prompt, stream=False)
        return await answer_whole(request, context, generation, wire, final)
    n_prompt, n_probs = context.reported_prompt_tokens(prompt), int(body.get("n_probs") or 0)
    plan = StreamPlan(
        tokens,
        lambda token, k: wire.token_frame(token, k, n_prompt, n_probs=n_probs),
        [encode_sse(dumps(_final(context, body, tokens, generation, prompt, True)), context.script.framing)],
    )
    return await play_stream(request, context, generation, plan, wire)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus counters of what was served and gauges of what is running and waiting, as llama-server started
    with --metrics names them."""
    context: StubContext = request.app[STUB_KEY]
    stale = any(isinstance(f, StaleMetricsFault) for f in context.script.faults)
    generations = [] if stale else context.state.generations
    # Prompts are evaluated when a generation takes a slot (or is answered whole): not in the queue.
    prompt = sum(context.reported_prompt_tokens(g.prompt) for g in generations if g.began or g.finished)
    generated = sum(g.generated for g in generations)
    lines = [
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.",
        "# TYPE llamacpp:prompt_tokens_total counter",
        f"llamacpp:prompt_tokens_total {prompt}",
        "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.",
        "# TYPE llamacpp:tokens_predicted_total counter",
        f"llamacpp:tokens_predicted_total {generated}",
        "# HELP llamacpp:requests_processing Number of requests processing.",
        "# TYPE llamacpp:requests_processing gauge",
        f"llamacpp:requests_processing {len(context.state.busy_slots)}",
        "# HELP llamacpp:requests_deferred Number of requests deferred.",
        "# TYPE llamacpp:requests_deferred gauge",
        f"llamacpp:requests_deferred {context.state.queued}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def tokenize_route(request: web.Request) -> web.Response:
    """``{"content": text}`` -> ``{"tokens": [id, …]}``: the tokenizer the stub's usage counts with."""
    body = await record_request(request)
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, str):
        return web.json_response(_error_body(400, '"content" must be a string'), status=400)
    return web.json_response({"tokens": tokenize(content)})


async def detokenize_route(request: web.Request) -> web.Response:
    """``{"tokens": [id, …]}`` -> ``{"content": text}``."""
    body = await record_request(request)
    ids = body.get("tokens") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(type(i) is int for i in ids):
        return web.json_response(_error_body(400, '"tokens" must be an array of integers'), status=400)
    return web.json_response({"content": detokenize(ids)})


async def apply_template(request: web.Request) -> web.Response:
    """Render chat messages the way the gemma/chatml template does: the prompt /completion will get."""
    body = await record_request(request)
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return web.json_response(_error_body(400, '"messages" must be an array of objects'), status=400)
    turns = "".join(f"<|im_start|>{m.get('role')}\n{m.get('content')}<|im_end|>\n" for m in messages)
    return web.json_response({"prompt": turns + "<|im_start|>assistant\n"})


async def health(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    if context.script.health == "loading":
        return web.json_response(_error_body(503, "Loading model"), status=503)
    return web.json_response({"status": "ok"})


async def props(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    return web.json_response(
        {
            "default_generation_settings": {
                "id": 0,
                "n_ctx": context.ctx_size // context.total_slots,
                "is_processing": False,
                "params": {
                    "seed": 4294967295,
                    "temperature": 0.8,
                    "top_k": 40,
                    "top_p": 0.95,
                    "n_predict": -1,
                },
            },
            "total_slots": context.total_slots,
            "model_alias": context.model,
            "model_ftype": "Q4_K - Medium",
            "model_path": f"/models/{context.model}.gguf",
            "modalities": {"vision": False, "video": False, "audio": False},
            "endpoint_slots": True,
            "endpoint_props": False,
            "endpoint_metrics": False,
            "chat_template": "",
            "bos_token": "<bos>",
            "eos_token": "<eos>",
            "build_info": context.script.build or BUILD,
            "is_sleeping": False,
        }
    )


async def slots(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    state = context.state
    return web.json_response(
        [
            {"id": i}
            # an idle slot keeps the id of the task it ran last; one never used names none
            | ({"id_task": state.slot_tasks[i]} if i in state.slot_tasks else {})
            | {
                "n_ctx": context.ctx_size // context.total_slots,
                "speculative": False,
                "is_processing": i in state.busy_slots,
            }
            for i in range(context.total_slots)
        ]
    )


async def models(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    return web.json_response(
        {
            "object": "list",
            "data": [
                {
                    "id": context.model,
                    "object": "model",
                    "created": int(context.started),
                    "owned_by": "llamacpp",
                    "meta": {
                        "vocab_type": 1,
                        "n_vocab": 262144,
                        "n_ctx": context.ctx_size // context.total_slots,
                        "n_ctx_train": 32768,
                        "n_embd": 640,
                        "n_params": 268098176,
                        "size": 246587904,
                        "ftype": "Q4_K - Medium",
                    },
                }
            ],
        }
    )


def create_app(context: StubContext) -> web.Application:
    app = web.Application(
        middlewares=[
            stub_middleware(lambda status, message: web.json_response(_error_body(status, message), status=status))
        ]
    )
    app[STUB_KEY] = context
    app.router.add_post("/completion", generation_route(_completion))
    app.router.add_post("/completions", generation_route(_completion))
    app.router.add_post("/apply-template", apply_template)
    app.router.add_post("/tokenize", tokenize_route)
    app.router.add_get("/metrics", metrics)
    # One server, many wires, as llama-server has: OpenAI's /v1 routes and Anthropic's /v1/messages.
    app[FLAVOUR_KEY] = OPENAI
    app.router.add_post("/v1/completions", generation_handler(chat=False))
    app.router.add_post("/v1/chat/completions", generation_handler(chat=True))
    app.router.add_post("/v1/messages", messages_route)
    app.router.add_post("/v1/responses", responses_route)
    app.router.add_post("/detokenize", detokenize_route)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/props", props)
    app.router.add_get("/slots", slots)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/models", models)
    return app
