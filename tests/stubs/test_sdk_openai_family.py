"""The official SDKs are the judges of the OpenAI-family, Responses and Anthropic stubs (docs/wires.md §10).

Each stub must be consumed to the end by the SDK, with the finish reason the
SDK exposes, and every scripted error status must surface as the SDK's own
exception class for that status.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from conform.stubs import Script, StubServer
from conform.stubs.script import ErrorInStreamFault, ResponsesViolationFault, StatusFault

OPENAI_FAMILY = ["openai", "vllm", "llamaswap"]


def _openai_client(stub: StubServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stub.url + "/v1", api_key="sk-conform", max_retries=0, timeout=10)


@pytest.mark.parametrize("engine", OPENAI_FAMILY)
async def test_openai_sdk_streams_chat_to_the_end(engine: str) -> None:
    async with StubServer(engine) as stub:
        client = _openai_client(stub)
        stream = await client.chat.completions.create(
            model="stub-model",
            messages=[{"role": "user", "content": "Name a colour."}],
            max_tokens=7,
            seed=3,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, finish, usage = [], None, None
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage is not None:
                usage = chunk.usage
        whole = await client.chat.completions.create(
            model="stub-model", messages=[{"role": "user", "content": "Name a colour."}], max_tokens=7, seed=3
        )
        await client.close()
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 7
    assert "".join(pieces) == whole.choices[0].message.content and whole.choices[0].finish_reason == "length"


@pytest.mark.parametrize("engine", ["openai", "vllm"])
async def test_openai_sdk_streams_legacy_completions_to_the_end(engine: str) -> None:
    async with StubServer(engine) as stub:
        client = _openai_client(stub)
        stream = await client.completions.create(model="stub-model", prompt="Once upon", max_tokens=5, stream=True)
        texts, finish = [], None
        async for chunk in stream:
            texts.append(chunk.choices[0].text if chunk.choices else "")
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        await client.close()
    assert finish == "length" and "".join(texts)


OPENAI_ERRORS = [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (403, openai.PermissionDeniedError),
    (404, openai.NotFoundError),
    (409, openai.ConflictError),
    (422, openai.UnprocessableEntityError),
    (429, openai.RateLimitError),
    (500, openai.InternalServerError),
    (503, openai.InternalServerError),
]


@pytest.mark.parametrize("engine", OPENAI_FAMILY)
@pytest.mark.parametrize(("status", "error_class"), OPENAI_ERRORS)
async def test_openai_sdk_raises_its_own_class_for_each_scripted_status(
    engine: str, status: int, error_class: type[openai.APIStatusError]
) -> None:
    script = Script(faults=(StatusFault(kind="status", status=status, message=f"scripted {status}"),))
    async with StubServer(engine, script) as stub:
        client = _openai_client(stub)
        with pytest.raises(error_class) as raised:
            await client.chat.completions.create(
                model="stub-model", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
            )
        await client.close()
    assert raised.value.status_code == status
    # llama-swap's own envelope ({"src", "error": "..."}) is not one the SDK takes a message from: it keeps the body.
    assert f"scripted {status}" in f"{raised.value} {raised.value.body}"


@pytest.mark.parametrize("engine", OPENAI_FAMILY)
async def test_openai_sdk_raises_api_error_for_an_error_inside_the_stream(engine: str) -> None:
    script = Script(faults=(ErrorInStreamFault(kind="error_in_stream", at_token=2, message="scripted mid-stream"),))
    async with StubServer(engine, script) as stub:
        client = _openai_client(stub)
        stream = await client.chat.completions.create(
            model="stub-model", messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True
        )
        received = 0
        with pytest.raises(openai.APIError, match="scripted mid-stream"):
            async for chunk in stream:
                received += bool(chunk.choices and chunk.choices[0].delta.content)
        await client.close()
    assert received == 2


async def test_vllm_stub_returns_token_ids_when_asked() -> None:
    async with StubServer("vllm") as stub:
        client = _openai_client(stub)
        stream = await client.chat.completions.create(
            model="stub-model",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
            stream=True,
            extra_body={"return_token_ids": True},
        )
        ids = [
            (chunk.choices[0].model_extra or {})["token_ids"]
            async for chunk in stream
            if chunk.choices and chunk.choices[0].delta.content
        ]
        await client.close()
    assert len(ids) == 4 and all(len(i) == 1 and isinstance(i[0], int) for i in ids)


def _anthropic_client(stub: StubServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stub.url, api_key="sk-ant-conform", max_retries=0, timeout=10)


async def test_anthropic_sdk_streams_a_message_to_the_end() -> None:
    async with StubServer("anthropic") as stub:
        client = _anthropic_client(stub)
        async with client.messages.stream(
            model="stub-model", max_tokens=6, messages=[{"role": "user", "content": "Name a colour."}]
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
        whole = await client.messages.create(
            model="stub-model", max_tokens=6, messages=[{"role": "user", "content": "Name a colour."}]
        )
        await client.close()
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 6
    assert text and text == whole.content[0].text  # type: ignore[union-attr]


ANTHROPIC_ERRORS = [
    (400, anthropic.BadRequestError),
    (401, anthropic.AuthenticationError),
    (403, anthropic.PermissionDeniedError),
    (404, anthropic.NotFoundError),
    (413, anthropic.RequestTooLargeError),
    (429, anthropic.RateLimitError),
    (500, anthropic.InternalServerError),
    (529, anthropic.OverloadedError),
]


@pytest.mark.parametrize(("status", "error_class"), ANTHROPIC_ERRORS)
async def test_anthropic_sdk_raises_its_own_class_for_each_scripted_status(
    status: int, error_class: type[anthropic.APIStatusError]
) -> None:
    script = Script(faults=(StatusFault(kind="status", status=status, message=f"scripted {status}"),))
    async with StubServer("anthropic", script) as stub:
        client = _anthropic_client(stub)
        with pytest.raises(error_class) as raised:
            await client.messages.create(
                model="stub-model", max_tokens=4, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        await client.close()
    assert raised.value.status_code == status
    assert f"scripted {status}" in str(raised.value)
    assert raised.value.request_id, "the stub sends a request-id header like the API"


async def test_anthropic_sdk_raises_for_an_error_event_inside_the_stream() -> None:
    script = Script(faults=(ErrorInStreamFault(kind="error_in_stream", at_token=1, message="scripted mid-stream"),))
    async with StubServer("anthropic", script) as stub:
        client = _anthropic_client(stub)
        with pytest.raises(anthropic.APIStatusError, match="scripted mid-stream"):
            async with client.messages.stream(
                model="stub-model", max_tokens=6, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                async for _ in stream:
                    pass
        await client.close()


_RESPONSE_EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
"""The openai SDK's union of Responses stream events, validated strictly (the SDK itself builds them leniently)."""


async def test_openai_sdk_streams_a_response_to_the_end_and_every_event_validates() -> None:
    async with StubServer("responses") as stub:
        client = _openai_client(stub)
        stream = await client.responses.create(
            model="stub-model", input="Name a colour.", max_output_tokens=6, stream=True
        )
        events = [_RESPONSE_EVENTS.validate_python(event.to_dict()) async for event in stream]
        whole = await client.responses.create(model="stub-model", input="Name a colour.", max_output_tokens=6)
        await client.close()
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert events[-1].type == "response.incomplete"
    assert Response.model_validate(whole.to_dict()).status == "incomplete"
    assert whole.incomplete_details is not None and whole.incomplete_details.reason == "max_output_tokens"
    assert deltas and deltas == whole.output_text
    assert whole.usage is not None and whole.usage.output_tokens == 6


@pytest.mark.parametrize(("status", "error_class"), OPENAI_ERRORS)
async def test_openai_sdk_raises_its_own_class_for_each_scripted_status_of_a_response(
    status: int, error_class: type[openai.APIStatusError]
) -> None:
    script = Script(faults=(StatusFault(kind="status", status=status, message=f"scripted {status}"),))
    async with StubServer("responses", script) as stub:
        client = _openai_client(stub)
        with pytest.raises(error_class, match=f"scripted {status}") as raised:
            await client.responses.create(model="stub-model", input="hi", max_output_tokens=4, stream=True)
        await client.close()
    assert raised.value.status_code == status


async def test_openai_sdk_reads_an_error_event_inside_a_response_stream() -> None:
    script = Script(faults=(ErrorInStreamFault(kind="error_in_stream", at_token=2, message="scripted mid-stream"),))
    async with StubServer("responses", script) as stub:
        client = _openai_client(stub)
        stream = await client.responses.create(model="stub-model", input="hi", max_output_tokens=8, stream=True)
        events = [_RESPONSE_EVENTS.validate_python(event.to_dict()) async for event in stream]
        await client.close()
    assert [e.type for e in events].count("response.output_text.delta") == 2
    error = events[-1]
    assert error.type == "error" and error.message == "scripted mid-stream"
    assert error.sequence_number == events[-2].sequence_number + 1


async def _accumulated_by_the_sdk(script: Script) -> list[str]:
    """The event types the openai SDK's responses.stream() helper builds a response from, event by event."""
    async with StubServer("responses", script) as stub:
        client = _openai_client(stub)
        try:
            async with client.responses.stream(model="stub-model", input="hi", max_output_tokens=4) as stream:
                return [event.type async for event in stream]
        finally:
            await client.close()


async def test_the_sdk_stream_helper_fails_on_events_that_do_not_say_where_they_belong() -> None:
    """What responses.event_indices says a client does: the good stub's events build a response; without their
    output_index (as llama.cpp b11434 sends them) the SDK's helper cannot place them."""
    assert (await _accumulated_by_the_sdk(Script()))[-1] == "response.incomplete"
    fault = ResponsesViolationFault(kind="responses_violation", violation="unplaced")
    with pytest.raises(TypeError, match="list indices must be integers or slices, not NoneType"):
        await _accumulated_by_the_sdk(Script(faults=(fault,)))
