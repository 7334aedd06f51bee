"""Steps of the llama-swap management feature: model list, running, unload, cold swap, images."""

from __future__ import annotations

import struct

import aiohttp
from pytest_bdd import given, parsers, then, when

from conform.adapters import HttpAdapter, LlamaSwapAdapter, WorkerError
from conform.harness.checks import CheckFailure, run_checks
from conform.harness.runtime import ScenarioRuntime
from conform.harness.stream import StreamRecord
from conform.stubs import Script

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _swap(adapter: HttpAdapter) -> LlamaSwapAdapter:
    if not isinstance(adapter, LlamaSwapAdapter):
        raise CheckFailure("not a llama-swap target", f"{adapter.engine} has no llama-swap management API")
    return adapter


def _running_models(runtime: ScenarioRuntime) -> list[str]:
    body = runtime.run(_swap(runtime.adapter).running())
    entries = body.get("running") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise CheckFailure(
            "running list malformed", f'/running answered {str(body)[:160]!r}, expected {{"running": [...]}}'
        )
    return [str(e.get("model")) for e in entries if isinstance(e, dict)]


def _served_model(runtime: ScenarioRuntime, stream: StreamRecord) -> str:
    run_checks(stream, "stream.completed")
    return runtime.run(runtime.adapter.model_for(stream.request))


@given(parsers.parse("the stub takes {seconds:g} seconds to swap a model in"))
def swap_delay(conform_runtime: ScenarioRuntime, seconds: float) -> None:
    conform_runtime.use_script(Script(swap_delay_ms=seconds * 1000))


@then("every listed model has a load state")
def models_have_state(conform_runtime: ScenarioRuntime) -> None:
    states = conform_runtime.run(_swap(conform_runtime.adapter).model_status())
    if not states:
        raise CheckFailure("no models listed", "/v1/models lists no model")
    unknown = [m for m, state in states.items() if state not in ("loaded", "unloaded", "loading", "ready", "stopped")]
    if unknown:
        raise CheckFailure("load state missing", f"models without a status.value: {unknown}")


@then("the running list names the model that served it")
def running_names_model(conform_runtime: ScenarioRuntime, stream: StreamRecord) -> None:
    model = _served_model(conform_runtime, stream)
    running = _running_models(conform_runtime)
    if model not in running:
        raise CheckFailure("served model not running", f"{model} served the request, /running lists {running}")


@when("I unload the model that served it")
def unload_served(conform_runtime: ScenarioRuntime, stream: StreamRecord) -> None:
    conform_runtime.run(_swap(conform_runtime.adapter).unload(_served_model(conform_runtime, stream)))


@when("I unload every model")
def unload_all(conform_runtime: ScenarioRuntime) -> None:
    conform_runtime.run(_swap(conform_runtime.adapter).unload())


@then("the running list does not name it")
def not_running(conform_runtime: ScenarioRuntime, stream: StreamRecord) -> None:
    model = _served_model(conform_runtime, stream)
    if model in _running_models(conform_runtime):
        raise CheckFailure("unload did not stop the model", f"{model} is still in /running after its unload")


@then("the running list is empty")
def none_running(conform_runtime: ScenarioRuntime) -> None:
    running = _running_models(conform_runtime)
    if running:
        raise CheckFailure("unload all left models running", f"/running still lists {running}")


@then(parsers.parse("a client with a {seconds:g} second read timeout gives up during the swap"))
def naive_client_gives_up(conform_runtime: ScenarioRuntime, seconds: float) -> None:
    adapter = conform_runtime.adapter
    body = {"model": conform_runtime.run(adapter.default_model()), "stream": True, "max_tokens": 2}
    body["messages"] = [{"role": "user", "content": "hi"}]

    async def naive() -> str:
        timeout = aiohttp.ClientTimeout(total=10.0, sock_read=seconds)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            try:
                async with client.post(adapter.base_url + "/v1/chat/completions", json=body) as response:
                    async for _ in response.content.iter_any():
                        pass
            except aiohttp.SocketTimeoutError:
                return "read timeout"
            return f"answered {response.status}"

    outcome = conform_runtime.run(naive())
    if outcome != "read timeout":
        raise CheckFailure("no swap delay seen", f"a client with a {seconds:g} s read timeout was {outcome}")


@then(parsers.parse("the stream completes after waiting at least {seconds:g} seconds for its first token"))
def completes_after_swap(stream: StreamRecord, seconds: float) -> None:
    run_checks(stream, "stream.completed", "stream.has_tokens")
    waited = stream.tokens[0].at - stream.sent_at
    if waited < seconds:
        raise CheckFailure("no cold swap", f"the first token came after {waited:.2f} s, the swap takes {seconds:g} s")


@when(parsers.parse("I ask for a {width:d}x{height:d} image"), target_fixture="images")
def ask_image(conform_runtime: ScenarioRuntime, width: int, height: int) -> list[bytes]:
    try:
        return conform_runtime.run(
            _swap(conform_runtime.adapter).generate_image("a lighthouse", size=f"{width}x{height}")
        )
    except WorkerError as error:
        raise CheckFailure("image generation failed", str(error)) from None


@then(parsers.parse("the image is a PNG of {width:d}x{height:d} pixels"))
def image_is_png(images: list[bytes], width: int, height: int) -> None:
    image = images[0]
    if not image.startswith(PNG_SIGNATURE) or image[12:16] != b"IHDR":
        raise CheckFailure("not a PNG", f"the image starts with {image[:16]!r}")
    size = struct.unpack(">II", image[16:24])
    if size != (width, height):
        raise CheckFailure("wrong image size", f"the PNG is {size[0]}x{size[1]}, {width}x{height} was asked")
