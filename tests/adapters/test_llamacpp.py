"""The llama.cpp adapter against the llama.cpp stub: events, provenance, every fault's error kind, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conform.adapters import (
    AdapterOptions,
    End,
    ErrorKind,
    LlamaCppAdapter,
    Metrics,
    RetryPolicy,
    Started,
    TaskRequest,
    Timeouts,
    Token,
    TokenEvent,
    WorkerError,
    llamacpp,
)
from conform.stubs import Script, StubServer, generate_tokens

REQUEST = TaskRequest(prompt="The capital of France is", max_tokens=6, seed=7)


async def stream(adapter: LlamaCppAdapter, request: TaskRequest = REQUEST) -> list[TokenEvent]:
    events: list[TokenEvent] = []
    async with contextlib.aclosing(adapter.submit(request)) as submitted:
        async for event in submitted:
            events.append(event)
    return events


@contextlib.asynccontextmanager
async def stub_and_adapter(script: dict[str, Any] | None = None, **options: Any):
    async with StubServer("llamacpp", Script.model_validate(script or {})) as stub:
        adapter = LlamaCppAdapter(stub.url, AdapterOptions(**options))
        try:
            yield stub, adapter
        finally:
            await adapter.aclose()


async def test_stream_follows_the_grammar_and_carries_ids() -> None:
    async with stub_and_adapter() as (_, adapter):
        events = await stream(adapter)
    assert isinstance(events[0], Started)
    assert isinstance(events[-2], Metrics)
    assert isinstance(events[-1], End)
    tokens = [e for e in events if isinstance(e, Token)]
    expected = generate_tokens(7, REQUEST.prompt or "", 6)
    assert [(t.index, t.text, t.token_id) for t in tokens] == [(i, e.text, e.id) for i, e in enumerate(expected)]
    end = events[-1]
    assert isinstance(end, End)
    assert end.finish_reason == "length"
    assert end.usage is not None and end.usage.completion_tokens == 6


async def test_request_body_is_determinism_friendly() -> None:
    async with stub_and_adapter() as (stub, adapter):
        await stream(adapter, TaskRequest(prompt="x", max_tokens=3, seed=11, cache_prompt=False))
    method, path, body = stub.state.requests[-1]
    assert (method, path) == ("POST", "/completion")
    assert body["stream"] is True
    assert body["temperature"] == 0.0 and body["top_p"] == 1.0 and body["min_p"] == 0.0 and body["top_k"] == 0
    assert body["seed"] == 11 and body["n_predict"] == 3 and body["cache_prompt"] is False


@pytest.mark.parametrize(
    "framing",
    [
        {"line_ending": "crlf"},
        {"line_ending": "cr"},
        {"space_after_colon": False},
        {"keepalive_every": 1},
        {"chunk_size": 1},
        {"line_ending": "crlf", "chunk_size": 1, "keepalive_every": 2, "space_after_colon": False},
    ],
)
async def test_valid_framing_variants_give_identical_events(framing: dict[str, Any]) -> None:
    async with stub_and_adapter() as (_, adapter):
        plain = [(e.index, e.text, e.token_id) for e in await stream(adapter) if isinstance(e, Token)]
    async with stub_and_adapter({"framing": framing}) as (_, adapter):
        varied = [(e.index, e.text, e.token_id) for e in await stream(adapter) if isinstance(e, Token)]
    assert varied == plain


@pytest.mark.parametrize(
    ("fault", "kind", "message"),
    [
        ({"kind": "missing_final"}, ErrorKind.PROTOCOL_VIOLATION, "without the final stop:true frame"),
        ({"kind": "malformed_json", "at_token": 1}, ErrorKind.PROTOCOL_VIOLATION, "frame 2 is not JSON"),
        ({"kind": "error_in_stream", "at_token": 2, "message": "boom"}, ErrorKind.ENGINE_ERROR, "boom"),
        ({"kind": "legacy_error_line"}, ErrorKind.PROTOCOL_VIOLATION, "without the final stop:true frame"),
        (
            {"kind": "content_type", "value": "application/json"},
            ErrorKind.PROTOCOL_VIOLATION,
            "'application/json'",
        ),
        ({"kind": "close_early", "at_token": 2}, ErrorKind.WORKER_RESET, "broke mid-stream"),
        (
            {"kind": "status", "status": 400, "message": "bad n"},
            ErrorKind.INVALID_REQUEST,
            "answered 400: bad n",
        ),
        ({"kind": "status", "status": 404, "message": "no"}, ErrorKind.NOT_FOUND, "answered 404"),
        ({"kind": "status", "status": 401, "message": "Invalid API Key"}, ErrorKind.AUTH, "answered 401"),
        ({"kind": "status", "status": 429, "message": "slow"}, ErrorKind.RATE_LIMITED, "answered 429"),
        ({"kind": "status", "status": 500, "message": "oops"}, ErrorKind.ENGINE_ERROR, "answered 500: oops"),
        (
            {"kind": "status", "status": 503, "message": "Loading model"},
            ErrorKind.UPSTREAM_UNAVAILABLE,
            "Loading",
        ),
        ({"kind": "status", "status": 503, "message": "server busy"}, ErrorKind.OVERLOADED, "busy"),
        ({"kind": "status", "status": 529, "message": "overloaded"}, ErrorKind.OVERLOADED, "answered 529"),
    ],
)
async def test_each_fault_becomes_its_error_kind(fault: dict[str, Any], kind: ErrorKind, message: str) -> None:
    async with stub_and_adapter({"faults": [fault]}, retry=RetryPolicy.none()) as (_, adapter):
        with pytest.raises(WorkerError) as raised:
            await stream(adapter)
    assert raised.value.kind is kind
    assert message in raised.value.message


async def test_in_stream_error_is_not_retriable_but_the_same_status_before_the_stream_is() -> None:
    async with stub_and_adapter({"faults": [{"kind": "error_in_stream"}]}) as (_, adapter):
        with pytest.raises(WorkerError) as in_stream:
            await stream(adapter)
    assert in_stream.value.kind is ErrorKind.ENGINE_ERROR and not in_stream.value.retriable
    async with stub_and_adapter({"faults": [{"kind": "status", "status": 500}]}, retry=RetryPolicy.none()) as (_, a):
        with pytest.raises(WorkerError) as before:
            await stream(a)
    assert before.value.kind is ErrorKind.ENGINE_ERROR and before.value.retriable


async def test_stall_after_the_stream_started_is_a_decode_timeout() -> None:
    timeouts = Timeouts(connect=1, total=10, idle=0.3)
    async with stub_and_adapter({"faults": [{"kind": "stall", "at_token": 2}]}, timeouts=timeouts) as (
        _,
        adapter,
    ):
        with pytest.raises(WorkerError) as raised:
            await stream(adapter)
    assert raised.value.kind is ErrorKind.DECODE_TIMEOUT


async def test_stall_before_headers_is_bounded_by_the_total_deadline() -> None:
    timeouts = Timeouts(connect=1, total=0.5, idle=10)
    script = {"faults": [{"kind": "stall", "phase": "before_headers"}]}
    async with stub_and_adapter(script, timeouts=timeouts) as (_, adapter):
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(WorkerError) as raised:
            await stream(adapter)
        assert loop.time() - start < 2.0
    assert raised.value.kind is ErrorKind.DEADLINE_UNMET


async def test_slow_stream_within_idle_but_past_total_is_deadline_unmet() -> None:
    timeouts = Timeouts(connect=1, total=0.3, idle=5)
    async with stub_and_adapter({"token_delay_ms": 50}, timeouts=timeouts) as (_, adapter):
        with pytest.raises(WorkerError) as raised:
            await stream(adapter, TaskRequest(prompt="x", max_tokens=100))
    assert raised.value.kind is ErrorKind.DEADLINE_UNMET


async def test_health_props_and_version() -> None:
    async with stub_and_adapter() as (_, adapter):
        health = await adapter.health()
        props = await adapter.props()
        version = await adapter.engine_version()
    assert health.ready
    assert (props.ctx_max, props.total_slots, props.busy_slots, props.model) == (2048, 2, 0, "stub-model")
    assert version.version == "b6000-conform-stub" and version.model == "stub-model"
    assert version.model_digest is not None and version.model_digest.startswith("meta-sha256:")


async def test_loading_engine_is_not_ready() -> None:
    async with stub_and_adapter({"health": "loading"}) as (_, adapter):
        health = await adapter.health()
    assert not health.ready and health.status == 503 and "Loading model" in health.detail


async def test_cancel_closes_the_stream_and_the_stub_stops_generating() -> None:
    async with stub_and_adapter({"token_delay_ms": 5}) as (stub, adapter):
        request = TaskRequest(prompt="x", max_tokens=500)
        seen = 0
        with pytest.raises(WorkerError) as raised:
            async with contextlib.aclosing(adapter.submit(request)) as submitted:
                async for event in submitted:
                    if isinstance(event, Token):
                        seen += 1
                        if seen == 3:
                            await adapter.cancel(request.task_id)
        assert raised.value.kind is ErrorKind.CANCELLED
        for _ in range(100):
            if not stub.state.busy_slots:
                break
            await asyncio.sleep(0.01)
        generation = stub.state.generations[-1]
    assert not stub.state.busy_slots
    assert generation.cancelled and generation.tokens_sent < 500


async def test_a_stub_ignoring_disconnect_keeps_its_slot_busy() -> None:
    async with stub_and_adapter({"token_delay_ms": 5, "faults": [{"kind": "ignore_disconnect"}]}) as (
        stub,
        adapter,
    ):
        request = TaskRequest(prompt="x", max_tokens=200)
        with contextlib.suppress(WorkerError):
            async with contextlib.aclosing(adapter.submit(request)) as submitted:
                async for event in submitted:
                    if isinstance(event, Token):
                        await adapter.cancel(request.task_id)
        await asyncio.sleep(0.2)
        assert (await adapter.props()).busy_slots == 1
        assert not stub.state.generations[-1].cancelled


async def test_chat_messages_are_rendered_by_the_engine_template() -> None:
    async with stub_and_adapter() as (stub, adapter):
        events = await stream(adapter, TaskRequest(messages=({"role": "user", "content": "Hi"},), max_tokens=2))
    assert sum(isinstance(e, Token) for e in events) == 2
    assert [r[1] for r in stub.state.requests] == ["/apply-template", "/completion"]
    assert stub.state.requests[-1][2]["prompt"] == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


_TWISTS: dict[str, list[Any]] = {
    "tokens": [[], [5, 6], [True], [1.0], "x", None, [None], [2**70]],
    "tokens_predicted": [True, 1.5, None, "3", -1, 0],
    "content": [None, 5, ["a"], "", "é"],
    "stop": [True, None, "no", 0, False],
    "error": [None, {"message": "boom", "code": 500}, "boom"],
    "completion_probabilities": [[], [{"logprob": -0.5}], "x", None],
}
"""Values the fast path must refuse, or take exactly as the general path does, field by field."""


_PLAIN = {"index": 0, "content": " a", "tokens": [7], "stop": False, "id_slot": 0, "tokens_predicted": 1}

_MISSING = object()
"""A twist that leaves the field out."""


def _twist(frame: dict[str, Any], key: str, value: Any) -> None:
    """Set one field of `frame` to `value`, or leave it out (_MISSING)."""
    if value is _MISSING:
        frame.pop(key, None)
    else:
        frame[key] = value


def _twisted(key: str, value: Any, predicted: int = 1) -> str:
    """A plain token frame with one twist."""
    frame = {**_PLAIN, "tokens_predicted": predicted}
    _twist(frame, key, value)
    return json.dumps(frame)


_SINGLE_TWISTS = [(key, value) for key, values in _TWISTS.items() for value in [*values, _MISSING]]


@st.composite
def llamacpp_frames(draw: st.DrawFn) -> str:
    """One frame's data: a plain token frame, mostly with one field set to an odd value or left out; now and
    then a second twist, or a frame that is not a JSON object at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(["[1]", "7", "null", '"x"', "not json", '{"tokens":[1', "1e400", '"\\ud800"']))
    frame = dict(_PLAIN, content=draw(st.text(max_size=3)), tokens=[draw(st.integers(0, 262_143))])
    frame["tokens_predicted"] = draw(st.integers(1, 100))
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        _twist(frame, *draw(st.sampled_from(_SINGLE_TWISTS)))
    return json.dumps(frame)


def _outcome(frames: list[str]) -> tuple[list[tuple[Any, ...]], tuple[ErrorKind, str] | None]:
    """What the adapter's fold makes of these frames (and a final one), every time stamp left out."""
    final = '{"content":"","stop":true,"stop_type":"limit","tokens_predicted":9,"tokens_evaluated":2}'
    adapter = LlamaCppAdapter("http://engine.test")
    fold = llamacpp._CompletionFold(adapter, "http://engine.test/completion")
    events: list[tuple[Any, ...]] = []
    try:
        for frame in [*frames, final]:
            for event in fold.fold(frame, 0.0):
                if isinstance(event, Token):
                    events.append((event.index, event.text, event.token_id, event.logprob))
                elif isinstance(event, End):
                    events.append((event.finish_reason, event.usage))
                else:
                    events.append((type(event).__name__,))
            if fold.finished:
                break
    except WorkerError as error:
        return events, (error.kind, error.message)
    return events, None


def _assert_paths_agree(frames: list[str]) -> None:
    """The adapter as it is, and with its typed fast path switched off, make the same of `frames`."""
    fast = _outcome(frames)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(llamacpp, "_decode_token_frame", _refuse)
        general = _outcome(frames)
    assert fast == general


def _refuse(data: str) -> Any:
    raise msgspec.DecodeError("the fast path is switched off")


def _twist_id(value: Any) -> str:
    return "missing" if value is _MISSING else json.dumps(value)


@pytest.mark.parametrize(("key", "value"), _SINGLE_TWISTS, ids=_twist_id)
def test_the_typed_fast_path_agrees_with_the_general_path_on_every_twist(key: str, value: Any) -> None:
    """Each odd field (a frame the typed decoder must refuse, or take as the general path does), between plain ones."""
    _assert_paths_agree([_twisted("index", 0, 1), _twisted(key, value, 2), _twisted("index", 0, 3)])


@given(st.lists(llamacpp_frames(), max_size=6))
def test_the_typed_fast_path_agrees_with_the_general_path(frames: list[str]) -> None:
    """Every frame the typed decoder takes must give what reading it as a dict gives: same tokens, same error."""
    _assert_paths_agree(frames)
