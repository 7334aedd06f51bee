"""The OpenAI-compatibility checks (``openai.*``): each passes on every well-behaved OpenAI-family stub, and fails,
with a detail a vendor can act on, on a stream or a stub that breaks it (its negative control)."""

from __future__ import annotations

from typing import Any

import pytest

from conform.adapters import (
    Capability,
    ChatMessage,
    End,
    OpenAIAdapter,
    Started,
    TaskRequest,
    Usage,
    create_adapter,
    engines,
)
from conform.harness.checks import CheckFailure
from conform.harness.openai_compat import (
    check_error_envelope,
    check_same_text,
    done_terminator,
    finish_reason_on_last_choice,
    include_usage,
    seeded_chat,
    usage_consistent,
)
from conform.harness.stream import StreamRecord, collect
from conform.stubs import Script, StubServer
from conform.stubs.script import Determinism
from tests.harness.test_checks import tokens
from tests.helpers import STUB_OPTIONS

OPENAI_FAMILY = [name for name, engine in engines().items() if Capability.OPENAI_COMPAT in engine.capabilities]
CHAT = TaskRequest(messages=(ChatMessage(role="user", content="Tell me about lighthouses."),), max_tokens=8, seed=42)


def _adapter(engine: str, stub: StubServer) -> OpenAIAdapter:
    adapter = create_adapter(engine, stub.url, STUB_OPTIONS)
    assert isinstance(adapter, OpenAIAdapter)
    return adapter


def test_the_openai_family() -> None:
    assert OPENAI_FAMILY == ["vllm", "openai", "llamaswap"]


@pytest.mark.parametrize("engine", OPENAI_FAMILY)
async def test_every_openai_check_holds_on_the_well_behaved_stub(engine: str) -> None:
    async with StubServer(engine) as stub:
        adapter = _adapter(engine, stub)
        try:
            stream = await collect(adapter, CHAT)
            model = await adapter.default_model()
            pair = [await collect(adapter, seeded_chat(model, 1234, 16)) for _ in range(2)]
            envelope = await check_error_envelope(adapter, model)
        finally:
            await adapter.aclose()
    for judge in (done_terminator, finish_reason_on_last_choice, include_usage, usage_consistent):
        judge(stream)
    check_same_text(*pair)
    assert isinstance(envelope["message"], str)


def _stream(n: int = 3, **wire: Any) -> StreamRecord:
    """A chat stream of `n` tokens whose End says what the adapter kept of the wire (`wire` over a good one)."""
    usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
    raw = {"done_marker": True, "finish_on_last_chunk": True, "finish_reason": "length", "usage": usage}
    raw["usage_chunk"] = True
    end = End("length", Usage(5, n), 0.0, raw={**raw, **wire})
    return StreamRecord(CHAT, [Started("t", 0.0), *tokens(*range(n)), end])


@pytest.mark.parametrize(
    ("judge", "wire", "title", "detail"),
    [
        (done_terminator, {"done_marker": False}, "no [DONE] terminator", "without a final `data: [DONE]` event"),
        (
            finish_reason_on_last_choice,
            {"finish_on_last_chunk": False},
            "finish_reason not on the last choice",
            "finish_reason 'length' arrived on a chunk that was not the last with choices",
        ),
        (include_usage, {"usage": None}, "usage chunk missing", "stream_options.include_usage was sent"),
        (
            include_usage,
            {"usage_chunk": False},
            "usage not in a chunk of its own",
            "OpenAI sends it on an extra last chunk with `choices: []`",
        ),
        (
            usage_consistent,
            {"usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}},
            "usage does not match the stream",
            "usage.completion_tokens is 4, 3 were streamed",
        ),
        (
            usage_consistent,
            {"usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 9}},
            "usage total inconsistent",
            "total_tokens 9 != prompt 5 + completion 3",
        ),
    ],
)
def test_each_openai_stream_check_names_what_the_wire_got_wrong(
    judge: Any, wire: dict[str, Any], title: str, detail: str
) -> None:
    for good in (done_terminator, finish_reason_on_last_choice, include_usage, usage_consistent):
        good(_stream())
    with pytest.raises(CheckFailure) as failed:
        judge(_stream(**wire))
    assert failed.value.title == title and detail in failed.value.detail


@pytest.mark.parametrize("engine", OPENAI_FAMILY)
async def test_seed_honoured_fails_on_a_stub_that_ignores_the_seed(engine: str) -> None:
    async with StubServer(engine, Script(determinism=Determinism(ignore_seed=True))) as stub:
        adapter = _adapter(engine, stub)
        try:
            model = await adapter.default_model()
            pair = [await collect(adapter, seeded_chat(model, 1234, 16)) for _ in range(2)]
        finally:
            await adapter.aclose()
    with pytest.raises(CheckFailure) as failed:
        check_same_text(*pair)
    assert failed.value.title == "seed not honoured"
    assert failed.value.detail.startswith("two identical requests with seed 1234 differ at character")


async def test_error_envelope_fails_on_vllm_flat_errors() -> None:
    """vLLM before 0.10.1 answers a 4xx with a flat object (``{"object": "error", "message", …}``), not nested
    under ``error`` as OpenAI's clients read it."""
    async with StubServer("vllm", Script(wire_version="0.10.0")) as stub:
        adapter = _adapter("vllm", stub)
        try:
            with pytest.raises(CheckFailure) as failed:
                await check_error_envelope(adapter, await adapter.default_model())
        finally:
            await adapter.aclose()
    assert failed.value.title == "no OpenAI error envelope"
    assert 'expected {"error": {...}}' in failed.value.detail
