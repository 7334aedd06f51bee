"""OpenAI, vLLM, llama-swap, Responses and Anthropic adapters: parsing, error shapes, retries against scripted
stubs."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from aiohttp import web

from conform.adapters import (
    AdapterOptions,
    AnthropicAdapter,
    ChatMessage,
    End,
    ErrorKind,
    LlamaSwapAdapter,
    OpenAIAdapter,
    ResponseFormat,
    ResponsesAdapter,
    RetryPolicy,
    TaskRequest,
    Timeouts,
    Token,
    TokenEvent,
    ToolCall,
    ToolSpec,
    WorkerError,
    create_adapter,
    split_llamaswap_url,
)
from conform.stubs import Script, StubServer
from conform.stubs.script import CloseEarlyFault, StatusFault
from tests.helpers import http_server, streaming


async def _stream(adapter: object, request: TaskRequest) -> list[TokenEvent]:
    assert isinstance(adapter, OpenAIAdapter | AnthropicAdapter)
    async with contextlib.aclosing(adapter.submit(request)) as events:
        return [event async for event in events]


def _sse(*frames: str | dict[str, object], event_names: bool = False) -> bytes:
    out = []
    for frame in frames:
        data = frame if isinstance(frame, str) else json.dumps(frame)
        name = f"event: {frame['type']}\n" if event_names and isinstance(frame, dict) else ""
        out.append(f"{name}data: {data}\n\n")
    return "".join(out).encode()


@dataclass
class Seen:
    """A request as the loopback server received it."""

    path: str
    headers: dict[str, str]
    body: bytes


async def _streamed_by(
    make: Callable[[str], OpenAIAdapter | AnthropicAdapter],
    body: bytes,
    request: TaskRequest,
    seen: list[Seen] | None = None,
) -> list[TokenEvent]:
    """The events of `request` from the adapter `make(url)` makes for a loopback server that streams `body`
    (and lists one model, m)."""

    async def handle(incoming: web.Request) -> web.StreamResponse:
        if seen is not None:
            seen.append(Seen(incoming.path, dict(incoming.headers), await incoming.read()))
        if incoming.path.endswith("/models"):
            return web.json_response({"object": "list", "data": [{"id": "m"}]})
        return await streaming(body)(incoming)

    async with http_server(handle) as url:
        adapter = make(url)
        try:
            return await _stream(adapter, request)
        finally:
            await adapter.aclose()


def _chunk(**choice: object) -> dict[str, object]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, **choice}]}


# -- OpenAI chunk reading -------------------------------------------------------------------------


async def test_vllm_token_ids_are_carried_on_tokens() -> None:
    async with StubServer("vllm") as stub:
        adapter = create_adapter("vllm", stub.url)
        events = await _stream(adapter, TaskRequest(prompt="hello", max_tokens=5, seed=1))
        await adapter.aclose()
    tokens = [e for e in events if isinstance(e, Token)]
    assert [t.index for t in tokens] == [0, 1, 2, 3, 4]
    assert all(isinstance(t.token_id, int) for t in tokens)
    body = stub.state.requests[-1][2]
    assert body["return_token_ids"] is True and body["top_k"] == -1, "vLLM gets every sampling field"


@pytest.mark.parametrize("wire_version", ["0.10.0", "0.11.2"])
async def test_both_vllm_error_shapes_give_the_message(wire_version: str) -> None:
    script = Script(wire_version=wire_version, faults=(StatusFault(kind="status", status=400, message="bad n"),))
    async with StubServer("vllm", script) as stub:
        adapter = create_adapter("vllm", stub.url)
        with pytest.raises(WorkerError) as raised:
            await _stream(adapter, TaskRequest(prompt="hello", max_tokens=5))
        await adapter.aclose()
    assert raised.value.kind is ErrorKind.INVALID_REQUEST and "bad n" in raised.value.message


async def test_done_without_a_finish_reason_is_a_protocol_violation() -> None:
    body = _sse(_chunk(delta={"content": "Hi"}, finish_reason=None), "[DONE]")
    with pytest.raises(WorkerError) as raised:
        await _streamed_by(lambda url: OpenAIAdapter(url + "/v1"), body, TaskRequest(prompt="x"))
    assert raised.value.kind is ErrorKind.PROTOCOL_VIOLATION and "[DONE]" in raised.value.message


async def test_a_finished_stream_without_done_ends_but_says_so() -> None:
    body = _sse(_chunk(delta={"content": "Hi"}, finish_reason=None), _chunk(delta={}, finish_reason="stop"))
    events = await _streamed_by(OpenAIAdapter, body, TaskRequest(prompt="x"))
    end = events[-1]
    assert isinstance(end, End) and end.finish_reason == "stop" and end.raw["done_marker"] is False


async def test_llamaswap_loading_chunks_are_not_tokens() -> None:
    loading = {"choices": [{"index": 0, "delta": {"reasoning_content": "llama-swap loading model: m\n"}}]}
    body = _sse(loading, _chunk(delta={"content": "Hi"}, finish_reason=None), _chunk(delta={}, finish_reason="stop"))
    events = await _streamed_by(LlamaSwapAdapter, body, TaskRequest(prompt="x"))
    assert [e.text for e in events if isinstance(e, Token)] == ["Hi"]
    end = events[-1]
    assert isinstance(end, End) and end.raw["loading_chunks"] == 1


# -- llama-swap target URLs and placeholder key -----------------------------------------------------


def test_llamaswap_url_form_maps_to_an_http_base() -> None:
    assert split_llamaswap_url("llama-swap://tok3n@127.0.0.1:8080") == ("http://127.0.0.1:8080", "tok3n")
    assert split_llamaswap_url("llama-swap://proxy.lan:9292/base") == ("http://proxy.lan:9292/base", None)
    assert split_llamaswap_url("http://h:1") == ("http://h:1", None)


@pytest.mark.parametrize(("token", "expected"), [("s3cret", "s3cret"), (None, "no-key")])
async def test_llamaswap_sends_the_url_token_or_the_placeholder(token: str | None, expected: str) -> None:
    seen: list[Seen] = []
    body = _sse(_chunk(delta={"content": "Hi"}, finish_reason="stop"), "[DONE]")

    def make(url: str) -> LlamaSwapAdapter:
        return LlamaSwapAdapter(url.replace("http://", f"llama-swap://{token}@") if token else url)

    await _streamed_by(make, body, TaskRequest(prompt="x"), seen)
    assert seen[-1].path == "/v1/chat/completions", "llama-swap routes chat"
    assert seen[-1].headers["Authorization"] == f"Bearer {expected}"
    assert json.loads(seen[-1].body)["max_tokens"] == 16, "the legacy max_tokens field"


# -- Anthropic events ------------------------------------------------------------------------------


async def _anthropic(body: bytes, seen: list[Seen] | None = None) -> list[TokenEvent]:
    def make(url: str) -> AnthropicAdapter:
        return AnthropicAdapter(url, AdapterOptions(api_key="sk-ant-x"))

    return await _streamed_by(make, body, TaskRequest(prompt="x", model="m"), seen)


_START = {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}}
_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}


async def test_anthropic_stream_sends_its_headers_and_reads_the_events() -> None:
    seen: list[Seen] = []
    body = _sse(
        _START,
        {"type": "ping"},
        _DELTA,
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
        {"type": "message_stop"},
        event_names=True,
    )
    events = await _anthropic(body, seen)
    end = events[-1]
    assert isinstance(end, End) and end.finish_reason == "stop" and end.usage is not None
    assert end.usage.completion_tokens == 1 and end.usage.prompt_tokens == 3
    assert seen[-1].headers["x-api-key"] == "sk-ant-x" and seen[-1].headers["anthropic-version"] == "2023-06-01"


async def test_anthropic_prompt_tokens_count_the_cached_ones_too() -> None:
    """``input_tokens`` leaves out what was read from or written to the prompt cache (llama.cpp's /v1/messages
    sends ``cache_read_input_tokens: 1``): the prompt's count is their sum."""
    usage = {"input_tokens": 28, "cache_read_input_tokens": 1, "cache_creation_input_tokens": 2, "output_tokens": 1}
    start = {"type": "message_start", "message": {"usage": usage}}
    stop = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}
    events = await _anthropic(_sse(start, _DELTA, stop, {"type": "message_stop"}, event_names=True))
    end = events[-1]
    assert isinstance(end, End) and end.usage is not None and end.usage.prompt_tokens == 31


async def test_an_event_named_unlike_its_type_is_a_protocol_violation() -> None:
    body = _sse(_START, event_names=True) + b"event: message_delta\ndata: " + json.dumps(_DELTA).encode() + b"\n\n"
    with pytest.raises(WorkerError) as raised:
        await _anthropic(body)
    assert raised.value.kind is ErrorKind.PROTOCOL_VIOLATION and "named 'message_delta'" in raised.value.message


async def test_an_overloaded_error_event_is_overloaded() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(WorkerError) as raised:
        await _anthropic(_sse(_START, _DELTA, error, event_names=True))
    assert raised.value.kind is ErrorKind.OVERLOADED and raised.value.in_stream


async def test_an_anthropic_stream_without_message_stop_is_a_protocol_violation() -> None:
    with pytest.raises(WorkerError) as raised:
        await _anthropic(_sse(_START, _DELTA, event_names=True))
    assert raised.value.kind is ErrorKind.PROTOCOL_VIOLATION and "message_stop" in raised.value.message


# -- Responses event reading ------------------------------------------------------------------------


async def _responses(body: bytes, seen: list[Seen] | None = None) -> list[TokenEvent]:
    return await _streamed_by(ResponsesAdapter, body, TaskRequest(prompt="x", model="m", max_tokens=2), seen)


def _numbered(*events: dict[str, object], unnumbered: bool = False) -> bytes:
    """Responses events, named after their type and numbered from 0 (or, `unnumbered`, left without numbers)."""
    return _sse(*(e if unnumbered else {**e, "sequence_number": n} for n, e in enumerate(events)), event_names=True)


_CREATED = {"type": "response.created", "response": {"id": "r", "status": "in_progress", "output": []}}


def _text(delta: str) -> dict[str, object]:
    return {"type": "response.output_text.delta", "item_id": "i", "output_index": 0, "content_index": 0, "delta": delta}


def _finished(status: str, output_tokens: int = 2) -> dict[str, object]:
    usage = {"input_tokens": 5, "output_tokens": output_tokens, "total_tokens": 5 + output_tokens}
    details = {"reason": "max_output_tokens"} if status == "incomplete" else None
    response = {"id": "r", "status": status, "incomplete_details": details, "output": [], "usage": usage}
    return {"type": f"response.{status}", "response": response}


async def test_a_responses_stream_posts_its_input_and_reads_deltas_usage_and_status() -> None:
    seen: list[Seen] = []
    events = await _responses(_numbered(_CREATED, _text("Hi"), _text(" there"), _finished("incomplete")), seen)
    assert [e.text for e in events if isinstance(e, Token)] == ["Hi", " there"]
    end = events[-1]
    assert isinstance(end, End) and end.finish_reason == "length" and end.usage is not None
    assert (end.usage.prompt_tokens, end.usage.completion_tokens) == (5, 2)
    assert end.raw["terminal"] == "response.incomplete" and end.raw["unnumbered"] == []
    posted = json.loads(seen[-1].body)
    assert seen[-1].path == "/v1/responses"
    assert (posted["input"], posted["max_output_tokens"], posted["stream"], posted["store"]) == ("x", 2, True, False)


async def test_a_completed_response_stopped_on_its_own() -> None:
    events = await _responses(_numbered(_CREATED, _text("Hi"), _finished("completed", 1)))
    end = events[-1]
    assert isinstance(end, End) and end.finish_reason == "stop"


async def test_events_without_numbers_are_counted_not_refused() -> None:
    """llama.cpp b11434 numbers none of its events: the stream is read, and the End says which had none."""
    events = await _responses(_numbered(_CREATED, _text("Hi"), _finished("completed", 1), unnumbered=True))
    end = events[-1]
    assert isinstance(end, End)
    assert end.raw["unnumbered"] == ["response.created", "response.output_text.delta", "response.completed"]


async def test_an_event_numbered_out_of_turn_is_a_protocol_violation() -> None:
    """A repeated delta keeps its number: the next one the reader expected is not it."""
    body = _sse(
        {**_CREATED, "sequence_number": 0},
        {**_text("Hi"), "sequence_number": 1},
        {**_text("Hi"), "sequence_number": 1},
        event_names=True,
    )
    with pytest.raises(WorkerError) as raised:
        await _responses(body)
    assert raised.value.kind is ErrorKind.PROTOCOL_VIOLATION
    assert "event 3 (response.output_text.delta) has sequence_number 1, expected 2" in raised.value.message


async def test_a_responses_event_named_unlike_its_type_is_a_protocol_violation() -> None:
    body = _numbered(_CREATED) + b"event: response.completed\ndata: " + json.dumps(_text("x")).encode() + b"\n\n"
    with pytest.raises(WorkerError) as raised:
        await _responses(body)
    assert raised.value.kind is ErrorKind.PROTOCOL_VIOLATION and "named 'response.completed'" in raised.value.message


@pytest.mark.parametrize(
    ("event", "said"),
    [
        ({"type": "error", "code": "server_error", "message": "boom"}, "server_error: boom"),
        (
            {"type": "response.failed", "response": {"status": "failed", "error": {"code": "oops", "message": "boom"}}},
            "response.failed: oops: boom",
        ),
    ],
)
async def test_an_error_or_a_failed_response_is_an_engine_error(event: dict[str, object], said: str) -> None:
    with pytest.raises(WorkerError) as raised:
        await _responses(_numbered(_CREATED, _text("Hi"), event))
    assert raised.value.kind is ErrorKind.ENGINE_ERROR and raised.value.in_stream and said in raised.value.message


async def test_a_responses_stream_without_a_terminal_event_is_a_protocol_violation() -> None:
    with pytest.raises(WorkerError) as raised:
        await _responses(_numbered(_CREATED, _text("Hi")))
    assert raised.value.kind is ErrorKind.PROTOCOL_VIOLATION and "response.completed" in raised.value.message


def _call_added(item_id: str, call_id: str, name: str) -> dict[str, object]:
    """A function_call item added as llama.cpp adds it: without an output_index."""
    item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": ""}
    return {"type": "response.output_item.added", "item": item}


def _arguments(item_id: str, delta: str) -> dict[str, object]:
    return {"type": "response.function_call_arguments.delta", "item_id": item_id, "delta": delta}


async def test_responses_calls_are_joined_by_their_item_ids() -> None:
    """Deltas name their call by item id (what llama.cpp and OpenAI both send); two calls interleaved stay
    apart, in the order their items were added, and a completed response with calls finishes with tool_calls."""
    body = _numbered(
        _CREATED,
        _call_added("fc_1", "call_a", "get_weather"),
        _call_added("fc_2", "call_b", "get_time"),
        _arguments("fc_1", '{"city": '),
        _arguments("fc_2", '{"timezone": "UTC"}'),
        _arguments("fc_1", '"Paris"}'),
        _finished("completed", 9),
    )
    end = (await _responses(body))[-1]
    assert isinstance(end, End) and end.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in end.tool_calls] == [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_time", '{"timezone": "UTC"}'),
    ]


async def test_an_arguments_delta_of_an_item_never_added_is_a_protocol_violation() -> None:
    with pytest.raises(WorkerError) as raised:
        await _responses(_numbered(_CREATED, _arguments("fc_9", "{}")))
    assert raised.value.kind is ErrorKind.PROTOCOL_VIOLATION
    assert "an arguments delta of item 'fc_9', which no function_call item added" in raised.value.message


async def test_a_responses_request_carries_tools_results_and_the_text_format() -> None:
    seen: list[Seen] = []
    call = ToolCall(id="call_a", name="get_weather", arguments='{"city": "Paris"}')
    request = TaskRequest(
        messages=(
            ChatMessage(role="user", content="Weather?"),
            ChatMessage(role="assistant", content="", tool_calls=(call,)),
            ChatMessage(role="tool", content="sunny", tool_call_id="call_a"),
        ),
        tools=(ToolSpec(name="get_weather", parameters={"type": "object"}),),
        tool_choice="required",
        response_format=ResponseFormat(type="json_schema", json_schema={"type": "object"}, name="w"),
        model="m",
    )
    await _streamed_by(ResponsesAdapter, _numbered(_CREATED, _finished("completed", 0)), request, seen)
    posted = json.loads(seen[-1].body)
    assert posted["input"] == [
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
    ]
    assert posted["tools"] == [
        {"type": "function", "name": "get_weather", "description": "", "parameters": {"type": "object"}}
    ]
    assert posted["tool_choice"] == "required"
    assert posted["text"] == {
        "format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}
    }


# -- retries against scripted stubs ------------------------------------------------------------------


def _generations(stub: StubServer) -> int:
    return sum(1 for method, path, _ in stub.state.requests if method == "POST")


def _options(total: float = 10.0) -> AdapterOptions:
    return AdapterOptions(timeouts=Timeouts(total=total), retry=RetryPolicy(seed=1))


@pytest.mark.parametrize(
    ("engine", "status", "headers", "least_wait"),
    [
        ("openai", 429, {"retry-after-ms": "150"}, 0.3),
        ("vllm", 500, {}, 0.0),
        ("llamaswap", 429, {"Retry-After": "0.2"}, 0.4),
        ("anthropic", 529, {"retry-after": "0.1"}, 0.2),
    ],
)
async def test_retriable_statuses_are_retried_with_the_honoured_delay(
    engine: str, status: int, headers: dict[str, str], least_wait: float
) -> None:
    fault = StatusFault(kind="status", status=status, message="try again", headers=headers, times=2)
    async with StubServer(engine, Script(faults=(fault,))) as stub:
        adapter = create_adapter(engine, stub.url, _options())
        started = time.monotonic()
        events = await _stream(adapter, TaskRequest(prompt="x", max_tokens=3))
        waited = time.monotonic() - started
        await adapter.aclose()
    assert isinstance(events[-1], End)
    assert _generations(stub) == 3, "two failures, then the success"
    assert waited >= least_wait


@pytest.mark.parametrize("status", [400, 401, 404])
@pytest.mark.parametrize("engine", ["openai", "anthropic"])
async def test_client_errors_are_not_retried(engine: str, status: int) -> None:
    fault = StatusFault(kind="status", status=status, message="no")
    async with StubServer(engine, Script(faults=(fault,))) as stub:
        adapter = create_adapter(engine, stub.url, _options())
        with pytest.raises(WorkerError) as raised:
            await _stream(adapter, TaskRequest(prompt="x", max_tokens=3))
        await adapter.aclose()
    assert raised.value.status == status and not raised.value.retriable
    assert _generations(stub) == 1


@pytest.mark.parametrize("engine", ["openai", "vllm", "llamaswap", "anthropic"])
async def test_a_started_stream_is_never_replayed(engine: str) -> None:
    async with StubServer(engine, Script(faults=(CloseEarlyFault(kind="close_early", at_token=1),))) as stub:
        adapter = create_adapter(engine, stub.url, _options())
        with pytest.raises(WorkerError) as raised:
            await _stream(adapter, TaskRequest(prompt="x", max_tokens=6))
        await adapter.aclose()
    assert raised.value.kind in (ErrorKind.WORKER_RESET, ErrorKind.PROTOCOL_VIOLATION) and raised.value.in_stream
    assert _generations(stub) == 1


async def test_a_retry_after_beyond_the_budget_fails_at_once() -> None:
    fault = StatusFault(kind="status", status=429, message="later", headers={"retry-after": "100"})
    async with StubServer("openai", Script(faults=(fault,))) as stub:
        adapter = create_adapter("openai", stub.url, _options(total=3.0))
        started = time.monotonic()
        with pytest.raises(WorkerError) as raised:
            await _stream(adapter, TaskRequest(prompt="x", max_tokens=3))
        await adapter.aclose()
    assert raised.value.kind is ErrorKind.RATE_LIMITED and raised.value.retry_after == 100
    assert time.monotonic() - started < 2.0 and _generations(stub) == 1
