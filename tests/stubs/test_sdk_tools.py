"""The official SDKs judge the stubs' tool calls and structured output (issue #20): each SDK parses what a stub
answers into its own types, streamed and whole, and the streamed call is the whole one."""

from __future__ import annotations

import json
from typing import Any, Literal

import anthropic
import ollama
import openai
import pydantic
import pytest
from openai.lib.streaming.chat import ChunkEvent

from conform.stubs import StubServer

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
OPENAI_TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
EXPECTED = {"city": "conform", "unit": "celsius"}


def _openai(stub: StubServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stub.url + "/v1", api_key="sk-conform", max_retries=0, timeout=10)


@pytest.mark.parametrize("engine", ["openai", "vllm", "llamaswap", "llamacpp"])
async def test_openai_sdk_parses_a_required_tool_call_streamed_and_whole(engine: str) -> None:
    async with StubServer(engine) as stub:
        client = _openai(stub)
        whole = await client.chat.completions.create(
            model="stub-model", messages=ASK, tools=OPENAI_TOOLS, tool_choice="required", max_tokens=64
        )
        async with client.chat.completions.stream(
            model="stub-model", messages=ASK, tools=OPENAI_TOOLS, tool_choice="required", max_tokens=64
        ) as stream:
            chunks = [event async for event in stream if isinstance(event, ChunkEvent)]
            streamed = await stream.get_final_completion()
        await client.close()
    whole_calls = whole.choices[0].message.tool_calls or []
    streamed_calls = streamed.choices[0].message.tool_calls or []
    assert chunks, "the SDK saw no chunk"
    assert whole.choices[0].finish_reason == streamed.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in whole_calls] == [("get_weather", EXPECTED)]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in streamed_calls] == [("get_weather", EXPECTED)]
    assert streamed_calls[0].id


async def test_openai_sdk_parses_json_schema_output_into_its_model() -> None:
    async with StubServer("openai") as stub:
        client = _openai(stub)
        answer = await client.chat.completions.create(
            model="stub-model",
            messages=ASK,
            max_tokens=64,
            response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER, "strict": True}},
        )
        await client.close()
    assert json.loads(answer.choices[0].message.content or "") == EXPECTED


async def test_anthropic_sdk_parses_tool_use_streamed_and_whole() -> None:
    tools: Any = [{"name": "get_weather", "input_schema": WEATHER}]
    async with StubServer("anthropic") as stub:
        client = anthropic.AsyncAnthropic(base_url=stub.url, api_key="sk-conform", max_retries=0, timeout=10)
        whole = await client.messages.create(
            model="stub-model", max_tokens=64, messages=ASK, tools=tools, tool_choice={"type": "any"}
        )
        async with client.messages.stream(
            model="stub-model", max_tokens=64, messages=ASK, tools=tools, tool_choice={"type": "any"}
        ) as stream:
            streamed = await stream.get_final_message()
        await client.close()
    for message in (whole, streamed):
        assert message.stop_reason == "tool_use"
        uses = [b for b in message.content if b.type == "tool_use"]
        assert [(u.name, u.input) for u in uses] == [("get_weather", EXPECTED)]
        assert uses[0].id.startswith("call_conform")


async def test_ollama_client_parses_tool_calls_streamed_and_whole_and_format() -> None:
    async with StubServer("ollama") as stub, ollama.AsyncClient(host=stub.url, timeout=10) as client:
        whole = await client.chat(model="stub-model", messages=ASK, tools=OPENAI_TOOLS, stream=False)
        calls = [
            call
            async for part in await client.chat(model="stub-model", messages=ASK, tools=OPENAI_TOOLS, stream=True)
            for call in part.message.tool_calls or []
        ]
        shaped = await client.chat(model="stub-model", messages=ASK, format=WEATHER, stream=False)
    assert [(c.function.name, dict(c.function.arguments)) for c in whole.message.tool_calls or []] == [
        ("get_weather", EXPECTED)
    ]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", EXPECTED)]
    assert json.loads(shaped.message.content or "") == EXPECTED


RESPONSES_TOOLS: Any = [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True}]


async def test_openai_sdk_parses_a_responses_tool_call_streamed_and_whole() -> None:
    async with StubServer("responses") as stub:
        client = _openai(stub)
        asked: Any = {"model": "stub-model", "input": ASK, "tools": RESPONSES_TOOLS, "tool_choice": "required"}
        whole = await client.responses.create(**asked, max_output_tokens=64)
        async with client.responses.stream(**asked, max_output_tokens=64) as stream:
            events = [event.type async for event in stream]
            streamed = await stream.get_final_response()
        await client.close()
    for response in (whole, streamed):
        calls = [item for item in response.output if item.type == "function_call"]
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", EXPECTED)]
        assert calls[0].call_id and response.status == "completed"
    assert "response.function_call_arguments.delta" in events and events[-1] == "response.completed"


class Weather(pydantic.BaseModel):
    city: str
    unit: Literal["celsius", "fahrenheit"]


async def test_openai_sdk_parses_responses_json_schema_output_into_its_model() -> None:
    async with StubServer("responses") as stub:
        client = _openai(stub)
        parsed = await client.responses.parse(model="stub-model", input=ASK, text_format=Weather, max_output_tokens=64)
        await client.close()
    assert parsed.output_parsed == Weather(city="conform", unit="celsius")
