"""llama-swap (docs/wires.md §8): an OpenAI proxy that swaps models in and out, plus its management API.

Chat and completions speak the OpenAI wire (`stubs.openai`) with the upstream
llama.cpp's fingerprint; what is llama-swap's own is here: several models of
which one is loaded at a time, a scripted swap delay (``swap_delay_ms``) that
holds a request for a model that is not loaded, ``/running``, unloading,
``/health`` as plain ``OK``, ``/api/version``, the proxy's error envelope of
the scripted version, and image generation that returns a real PNG.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._engine import STUB_KEY, StubContext, overloaded, record_request
from .openai import OpenAIFlavour, base_app, generate, model_entry, openai_error
from .png import make_png

__all__ = ["LLAMASWAP", "create_app"]


def proxy_error(status: int, message: str, version: str | None = None) -> Any:
    """v218..v250 ``{"src","error"}``; ≥ v251 an OpenAI-typed error object; ≤ v217 ``{"error"}``."""
    number = int(version) if version and version.isdigit() else 250
    if number <= 217:
        return {"error": message}
    if number <= 250:
        return {"src": "llama-swap", "error": message}
    kind = "invalid_request_error" if status < 500 else "server_error"
    code = "concurrency_limit" if status == 429 else None
    return {"src": "llama-swap", "error": {"message": message, "type": kind, "param": None, "code": code}}


LLAMASWAP = OpenAIFlavour(
    "llamaswap", "llama-swap", proxy_error, fingerprint="b6000-conform-stub", upstream_error=openai_error
)


@dataclass(slots=True)
class SwapState:
    models: list[str]
    loaded: set[str] = field(default_factory=set)


SWAP_KEY = web.AppKey("conform_llamaswap", SwapState)


async def _swap_in(context: StubContext, swap: SwapState, model: str) -> None:
    """Load `model` (and unload the others, as one swap group does), taking the script's swap delay."""
    if model in swap.loaded:
        return
    await asyncio.sleep(context.script.swap_delay_ms / 1000.0)
    swap.loaded = {model}


async def _requested_model(request: web.Request) -> str | None:
    """The body's model, read only when the content type is JSON (as llama-swap does)."""
    if "application/json" not in request.headers.get("Content-Type", ""):
        return None
    try:
        body = await request.json()
    except ValueError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _generation(chat: bool) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        context, swap = request.app[STUB_KEY], request.app[SWAP_KEY]
        model = await _requested_model(request)
        if model is None:  # a body that is not JSON, or names no model (proxymanager's proxyOAIHandler)
            await record_request(request)
            return _error(context, 400, "missing or invalid 'model' key")
        if model not in swap.models:
            await record_request(request)
            return _error(context, 404, f"no local server found for {model}")
        refused = await overloaded(request, context)
        if refused is not None:
            return refused
        async with context.admission():
            await _swap_in(context, swap, model)
            return await generate(request, context, LLAMASWAP, chat, swap.models)

    return handler


def _error(context: StubContext, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = proxy_error(status, message, context.script.wire_version)
    if isinstance(body, dict) and context.script.wire_version and int(context.script.wire_version) <= 217:
        return web.Response(status=status, text=message, headers=headers)
    return web.json_response(body, status=status, headers=headers)


async def list_models(request: web.Request) -> web.Response:
    context, swap = request.app[STUB_KEY], request.app[SWAP_KEY]
    data = []
    for model in swap.models:
        entry = model_entry(context, model, LLAMASWAP.owned_by)
        entry.update(
            name=model,
            description=f"conform stub model {model}",
            status={"value": "loaded" if model in swap.loaded else "unloaded"},
            meta={"llamaswap": {}},
        )
        data.append(entry)
    return web.json_response({"object": "list", "data": data})


async def running(request: web.Request) -> web.Response:
    context, swap = request.app[STUB_KEY], request.app[SWAP_KEY]
    entries: list[dict[str, Any]] = []
    for model in sorted(swap.loaded):
        if context.script.wire_version == "150":
            entries.append({"model": model, "state": "ready"})
            continue
        entries.append(
            {
                "model": model,
                "state": "ready",
                "cmd": f"llama-server -m /models/{model}.gguf --port 5800",
                "proxy": "http://127.0.0.1:5800",
                "ttl": 0,
                "name": model,
                "description": "",
            }
        )
    return web.json_response({"running": entries})


async def unload_all(request: web.Request) -> web.Response:
    await record_request(request)
    request.app[SWAP_KEY].loaded.clear()
    return web.json_response({"msg": "ok"})


async def unload_all_legacy(request: web.Request) -> web.Response:
    request.app[SWAP_KEY].loaded.clear()
    return web.Response(text="OK")


async def unload_one(request: web.Request) -> web.Response:
    await record_request(request)
    swap, model = request.app[SWAP_KEY], request.match_info["model"]
    if model not in swap.models:
        return _error(request.app[STUB_KEY], 404, f"model {model} not found")
    swap.loaded.discard(model)
    return web.Response(text="OK")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="OK")


async def version(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    return web.json_response(
        {"version": context.script.build or "250", "commit": "conform-stub", "build_date": "2026-08-01T00:00:00Z"}
    )


async def images(request: web.Request) -> web.Response:
    context = request.app[STUB_KEY]
    body = await record_request(request)
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return _error(context, 400, "prompt is required")
    size = str(body.get("size", "64x64"))
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()) or not (0 < int(width) <= 1024 and 0 < int(height) <= 1024):
        return _error(context, 400, f"invalid size {size!r}")
    seed: int = body["seed"] if isinstance(body.get("seed"), int) else context.seed
    count = body.get("n", 1) if isinstance(body.get("n"), int) else 1
    png = make_png(int(width), int(height), body["prompt"], seed)
    data = [{"b64_json": base64.b64encode(png).decode()} for _ in range(max(1, min(count, 4)))]
    return web.json_response({"created": int(time.time()), "output_format": "png", "data": data})


def create_app(context: StubContext) -> web.Application:
    app = base_app(context, LLAMASWAP)
    app[SWAP_KEY] = SwapState(models=[context.model, f"{context.model}-b"])
    app.router.add_post("/v1/chat/completions", _generation(chat=True))
    app.router.add_post("/v1/completions", _generation(chat=False))
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/models", list_models)
    app.router.add_get("/running", running)
    app.router.add_get("/unload", unload_all_legacy)
    app.router.add_post("/api/models/unload", unload_all)
    app.router.add_post("/api/models/unload/{model}", unload_one)
    app.router.add_get("/health", health)
    app.router.add_get("/api/version", version)
    app.router.add_post("/v1/images/generations", images)
    return app
