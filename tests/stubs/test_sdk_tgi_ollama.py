"""The official `text-generation` and `ollama` clients are the judges of the TGI and Ollama stubs.

Each consumes the stub's stream to the end, and raises its own error class
for each scripted error (docs/wires.md §4.5 and §9.5 say how each client maps them).
"""

from __future__ import annotations

import ollama
import pytest
import text_generation
from text_generation import errors as tgi_errors

from conform.stubs import Script, StubServer
from conform.stubs.script import ErrorInStreamFault, StatusFault

# text-generation 0.7 still calls pydantic's v1 `.dict()`: its warning is the client's, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The `dict` method is deprecated:DeprecationWarning")


def _status(status: int, message: str) -> Script:
    return Script(faults=(StatusFault(kind="status", status=status, message=message),))


# -- TGI ------------------------------------------------------------------------------------------------


async def test_text_generation_client_streams_to_the_end() -> None:
    async with StubServer("tgi") as stub:
        client = text_generation.AsyncClient(stub.url, timeout=10)
        pieces, last = [], None
        async for response in client.generate_stream("Once upon a time", max_new_tokens=6, seed=5):
            pieces.append(response.token.text)
            last = response
        whole = await client.generate("Once upon a time", max_new_tokens=6, seed=5)
    assert last is not None and last.details is not None
    assert last.details.finish_reason == "length" and last.details.generated_tokens == 6
    assert "".join(pieces) == last.generated_text == whole.generated_text
    assert [t.id for t in whole.details.tokens] and whole.details.seed == 5


@pytest.mark.parametrize(
    ("status", "message", "error_class"),
    [
        (422, "Input validation error: `inputs` must not be empty", tgi_errors.ValidationError),
        (424, "Request failed during generation: CUDA OOM", tgi_errors.GenerationError),
        (429, "Model is overloaded", tgi_errors.OverloadedError),
        (500, "Incomplete generation", tgi_errors.IncompleteGenerationError),
        (400, "bad request from a proxy", tgi_errors.BadRequestError),
        (404, "no such route", tgi_errors.NotFoundError),
        (504, "shard timed out", tgi_errors.ShardTimeoutError),
    ],
)
async def test_text_generation_client_raises_its_class_for_each_scripted_status(
    status: int, message: str, error_class: type[Exception]
) -> None:
    async with StubServer("tgi", _status(status, message)) as stub:
        client = text_generation.AsyncClient(stub.url, timeout=10)
        with pytest.raises(error_class, match=r"\w"):
            async for _ in client.generate_stream("hi", max_new_tokens=4):
                pass
        with pytest.raises(error_class):
            await client.generate("hi", max_new_tokens=4)


async def test_text_generation_client_raises_for_an_error_inside_the_stream() -> None:
    script = Script(faults=(ErrorInStreamFault(kind="error_in_stream", at_token=2, message="shard died"),))
    async with StubServer("tgi", script) as stub:
        client = text_generation.AsyncClient(stub.url, timeout=10)
        received = 0
        with pytest.raises(tgi_errors.GenerationError, match="shard died"):
            async for _ in client.generate_stream("hi", max_new_tokens=8):
                received += 1
    assert received == 2


async def test_a_zero_temperature_is_a_validation_error_inside_a_200_stream() -> None:
    """What real TGI does (validation runs after the stream started); the client sees ValidationError."""
    async with StubServer("tgi") as stub:
        client = text_generation.AsyncClient(stub.url, timeout=10)
        # The client itself refuses temperature=0, so send what a raw HTTP user would.
        import httpx

        async with (
            httpx.AsyncClient() as http,
            http.stream(
                "POST",
                stub.url + "/generate_stream",
                json={"inputs": "hi", "parameters": {"temperature": 0, "max_new_tokens": 4}},
            ) as response,
        ):
            body = (await response.aread()).decode()
        assert response.status_code == 200
        assert body.startswith("data:{") and '"error_type":"validation"' in body
        assert client.base_url == stub.url


# -- Ollama ------------------------------------------------------------------------------------------------


async def test_ollama_client_streams_generate_and_chat_to_the_end() -> None:
    async with StubServer("ollama") as stub, ollama.AsyncClient(host=stub.url, timeout=10) as client:
        parts = [
            part
            async for part in await client.generate(
                model="stub-model", prompt="Once upon a time", stream=True, options={"seed": 3, "num_predict": 6}
            )
        ]
        whole = await client.generate(
            model="stub-model", prompt="Once upon a time", options={"seed": 3, "num_predict": 6}
        )
        chat = [
            part
            async for part in await client.chat(
                model="stub-model",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                options={"num_predict": 4},
            )
        ]
        tags = await client.list()
        version = await client.ps()
    assert parts[-1].done and parts[-1].done_reason == "length" and parts[-1].eval_count == 6
    assert "".join(p.response for p in parts) == whole.response
    assert chat[-1].done and "".join(p.message.content or "" for p in chat[:-1])
    assert [m.model for m in tags.models] == ["stub-model"] and version.models


@pytest.mark.parametrize("status", [400, 404, 429, 500, 502, 503])
async def test_ollama_client_raises_response_error_with_the_status(status: int) -> None:
    script = _status(status, f"scripted {status}")
    async with StubServer("ollama", script) as stub, ollama.AsyncClient(host=stub.url, timeout=10) as client:
        with pytest.raises(ollama.ResponseError) as raised:
            async for _ in await client.generate(model="stub-model", prompt="hi", stream=True):
                pass
    assert raised.value.status_code == status and f"scripted {status}" in raised.value.error


async def test_ollama_client_raises_for_an_error_line_inside_the_stream() -> None:
    script = Script(faults=(ErrorInStreamFault(kind="error_in_stream", at_token=1, message="runner crashed"),))
    async with StubServer("ollama", script) as stub, ollama.AsyncClient(host=stub.url, timeout=10) as client:
        with pytest.raises(ollama.ResponseError, match="runner crashed"):
            async for _ in await client.generate(model="stub-model", prompt="hi", stream=True):
                pass
