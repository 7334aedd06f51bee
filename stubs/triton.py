"""Triton generate-extension wire format (docs/wires.md §5): ``/v2/models/{m}/generate_stream`` and friends.

One ``data: {"model_name","model_version","text_output"}`` event per response
and no terminator: the body just ends. Errors are ``{"error": "…"}`` (404 for
an unknown model, 400 for a missing input), or a ``data: {"error": …}`` event
once the stream has started. ``/generate`` answers one JSON object.
Sampling settings are request ``parameters``, as a Python-backend model reads them.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from ._engine import (
    STUB_KEY,
    StreamPlan,
    StubContext,
    answer_whole,
    dumps,
    encode_sse,
    generation_route,
    play_stream,
    record_request,
    stub_middleware,
)
from .script import Framing
from .tokens import StubToken

__all__ = ["create_app"]

VERSION = "2.51.0"


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class TritonWire:
    content_type = "text/event-stream"

    def __init__(self, framing: Framing, model: str) -> None:
        self._framing = framing
        self._head = f'{{"model_name":{dumps(model)},"model_version":"1","text_output":'

    def error_response(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return _error_response(status, message, headers)

    def error_frame(self, message: str) -> bytes:
        return encode_sse(dumps({"error": message}), self._framing)

    def legacy_error_frame(self, message: str) -> bytes:
        return f"error: {dumps({'error': message})}\n\n".encode()

    def malformed_frame(self) -> bytes:
        return encode_sse(self._head + '" bro', self._framing)

    def token_frame(self, token: StubToken) -> bytes:
        return encode_sse(f"{self._head}{dumps(token.text)}}}", self._framing)


def _parameters(body: dict[str, Any]) -> tuple[int | None, int | None]:
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    assert isinstance(parameters, dict)
    budget, seed = parameters.get("max_tokens"), parameters.get("seed")
    return (budget if isinstance(budget, int) else None), (seed if isinstance(seed, int) else None)


def _route(stream: bool) -> Handler:
    return generation_route(functools.partial(_generate, stream=stream))


async def _generate(request: web.Request, context: StubContext, stream: bool) -> web.StreamResponse:
    body = await record_request(request)
    model = request.match_info["model"]
    if model != context.model:
        return _error_response(404, f"Request for unknown model: '{model}' is not found")
    if context.script.health == "loading":
        return _error_response(503, f"Request for unknown model: '{model}' has no available versions")
    if not isinstance(body, dict) or not isinstance(body.get("text_input"), str):
        got = sorted(body) if isinstance(body, dict) else []
        return _error_response(
            400,
            f"[request id: <id_unknown>] expected 1 inputs but got 0 inputs for model '{model}'. Got input(s) "
            f"{got}, but missing required input(s) ['text_input']. Please provide all required input(s).",
        )
    budget, seed = _parameters(body)
    generation, tokens = await context.new_generation(request, body["text_input"], seed, budget)
    wire = TritonWire(context.script.framing, model)
    if not stream:
        reply = {"model_name": model, "model_version": "1", "text_output": "".join(t.text for t in tokens)}
        if "id" in body:
            reply = {"id": body["id"], **reply}
        return await answer_whole(request, context, generation, wire, reply)
    plan = StreamPlan(tokens, lambda token, _: wire.token_frame(token), [])
    return await play_stream(request, context, generation, plan, wire)


async def ready(request: web.Request) -> web.Response:
    return web.Response(status=400 if request.app[STUB_KEY].script.health == "loading" else 200)


async def live(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def server_metadata(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    extensions = ["classification", "sequence", "model_repository", "schedule_policy", "model_configuration"]
    return web.json_response({"name": "triton", "version": context.script.build or VERSION, "extensions": extensions})


async def model_metadata(request: web.Request) -> web.Response:
    context, model = request.app[STUB_KEY], request.match_info["model"]
    if model != context.model:
        return _error_response(404, f"Request for unknown model: '{model}' is not found")
    tensor = {"datatype": "BYTES", "shape": [1]}
    return web.json_response(
        {
            "name": model,
            "versions": ["1"],
            "platform": "python",
            "inputs": [{"name": "text_input", **tensor}],
            "outputs": [{"name": "text_output", **tensor}],
        }
    )


async def repository_index(request: web.Request) -> web.Response:
    await record_request(request)
    return web.json_response([{"name": request.app[STUB_KEY].model, "version": "1", "state": "READY"}])


def create_app(context: StubContext) -> web.Application:
    app = web.Application(middlewares=[stub_middleware(_error_response)])
    app[STUB_KEY] = context
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        app.router.add_post(prefix + "/generate_stream", _route(stream=True))
        app.router.add_post(prefix + "/generate", _route(stream=False))
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2", server_metadata)
    app.router.add_get("/v2/models/{model}", model_metadata)
    app.router.add_post("/v2/repository/index", repository_index)
    return app
