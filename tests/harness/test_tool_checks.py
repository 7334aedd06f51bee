"""The tool and structured-output checks (issue #20): each passes on every well-behaved stub whose wire carries
the feature, in both modes, and fails on a stub scripted to violate it with a detail a vendor can act on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conform.adapters import (
    Answer,
    Capability,
    TaskRequest,
    ToolCall,
    create_adapter,
    engines,
)
from conform.harness.checks import CheckFailure
from conform.harness.tools import (
    FORECAST_SCHEMA,
    TOOLS,
    Mode,
    answer_in,
    check_calls_equivalent,
    check_json_object,
    check_json_schema,
    check_no_tool_call,
    check_parallel_calls,
    check_roundtrip,
    check_tool_call,
    json_object_request,
    json_schema_request,
    parallel_request,
    roundtrip_request,
    tool_request,
)
from conform.stubs import Script, StubServer
from conform.stubs.script import StructuredViolationFault, ToolViolation, ToolViolationFault
from tests.helpers import STUB_OPTIONS

MODES: list[Mode] = ["blocking", "stream"]
BASE = TaskRequest(prompt="unused", max_tokens=16, seed=42)


def _with(*needs: Capability) -> list[str]:
    return [name for name, engine in engines().items() if set(needs) <= engine.capabilities]


SCHEMA_ENGINES = _with(Capability.JSON_SCHEMA)
OBJECT_ENGINES = _with(Capability.JSON_OBJECT)
TOOL_ENGINES = _with(Capability.TOOLS)
CHOICE_ENGINES = _with(Capability.TOOLS, Capability.TOOL_CHOICE)


def test_the_wires_that_carry_each_feature() -> None:
    assert SCHEMA_ENGINES == OBJECT_ENGINES == ["llamacpp", "vllm", "openai", "responses", "llamaswap", "ollama"]
    assert TOOL_ENGINES == ["vllm", "openai", "responses", "anthropic", "llamaswap", "ollama"]
    assert CHOICE_ENGINES == ["vllm", "openai", "responses", "anthropic", "llamaswap"]


async def _answers(engine: str, script: Script, request: TaskRequest, *modes: Mode) -> list[Answer]:
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, STUB_OPTIONS)
        try:
            return [await answer_in(adapter, request, mode) for mode in modes]
        finally:
            await adapter.aclose()


def _tool_fault(violation: ToolViolation) -> Script:
    return Script(faults=(ToolViolationFault(kind="tool_violation", violation=violation),))


def _fails(check: Callable[[], None], title: str, detail: str) -> None:
    with pytest.raises(CheckFailure) as failed:
        check()
    assert failed.value.title == title
    assert detail in failed.value.detail, failed.value.detail


# -- structured.json_schema, structured.json_object ---------------------------------------------


@pytest.mark.parametrize("engine", SCHEMA_ENGINES)
async def test_structured_checks_hold_on_every_well_behaved_stub(engine: str) -> None:
    for answer in await _answers(engine, Script(), json_schema_request(BASE), *MODES):
        check_json_schema(answer, FORECAST_SCHEMA)
    for answer in await _answers(engine, Script(), json_object_request(BASE), *MODES):
        check_json_object(answer)


@pytest.mark.parametrize("engine", SCHEMA_ENGINES)
@pytest.mark.parametrize("mode", MODES)
async def test_json_schema_fails_naming_the_pointer_and_keyword(engine: str, mode: Mode) -> None:
    script = Script(faults=(StructuredViolationFault(kind="structured_violation", violation="off_schema"),))
    [answer] = await _answers(engine, script, json_schema_request(BASE), mode)
    _fails(
        lambda: check_json_schema(answer, FORECAST_SCHEMA),
        "the output violates the schema",
        "at / the 'required' keyword fails: 'city' is a required property",
    )


def test_json_schema_names_a_nested_pointer_and_output_that_is_not_json() -> None:
    forecast = '[{"day": "sun", "high": 20}]'
    nested = f'{{"city": "Paris", "unit": "celsius", "forecast": {forecast}, "location": {{"lat": 1, "lon": 2}}}}'
    _fails(
        lambda: check_json_schema(Answer(nested), FORECAST_SCHEMA),
        "the output violates the schema",
        "at /forecast/0/day the 'enum' keyword fails: 'sun' is not one of ['mon', 'tue', 'wed']",
    )
    _fails(
        lambda: check_json_schema(Answer('{"city": "Par'), FORECAST_SCHEMA),
        "the output is not JSON",
        '\'{"city": "Par\'',
    )


@pytest.mark.parametrize("engine", OBJECT_ENGINES)
@pytest.mark.parametrize("mode", MODES)
async def test_json_object_fails_on_a_stub_that_answers_an_array(engine: str, mode: Mode) -> None:
    script = Script(faults=(StructuredViolationFault(kind="structured_violation", violation="not_object"),))
    [answer] = await _answers(engine, script, json_object_request(BASE), mode)
    _fails(lambda: check_json_object(answer), "the output is not a JSON object", "JSON mode gave a JSON list")


# -- tools.call, tools.choice_none, tools.stream_equivalence, tools.parallel ---------------------


@pytest.mark.parametrize("engine", CHOICE_ENGINES)
async def test_tool_checks_hold_on_every_well_behaved_stub(engine: str) -> None:
    for answer in await _answers(engine, Script(), tool_request(BASE), *MODES):
        check_tool_call(answer, TOOLS)
    for answer in await _answers(engine, Script(), tool_request(BASE, "none"), *MODES):
        check_no_tool_call(answer)
    check_calls_equivalent(*await _answers(engine, Script(), tool_request(BASE), "stream", "blocking"))
    for answer in await _answers(engine, Script(), parallel_request(BASE), *MODES):
        check_parallel_calls(answer, TOOLS)


CALL_VIOLATIONS: list[tuple[ToolViolation, str, str]] = [
    ("invalid_arguments", "tool call arguments are not JSON", "call 1 (get_weather): "),
    (
        "arguments_off_schema",
        "tool call arguments violate the tool's schema",
        "call 1 (get_weather): at / the 'required' keyword fails: 'city' is a required property",
    ),
    ("undeclared_name", "a call of a tool the request never declared", "call 1 names 'undeclared_tool'"),
    ("ignore_required", "no tool call although one was required", "tool_choice required, yet the answer is text"),
    ("wrong_finish", "the finish reason does not say tool call", "calls ['get_weather'] but its finish reason is"),
]


@pytest.mark.parametrize("engine", CHOICE_ENGINES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("violation", "title", "detail"), CALL_VIOLATIONS)
async def test_tool_call_fails_on_each_broken_call(
    engine: str, mode: Mode, violation: ToolViolation, title: str, detail: str
) -> None:
    [answer] = await _answers(engine, _tool_fault(violation), tool_request(BASE), mode)
    _fails(lambda: check_tool_call(answer, TOOLS), title, detail)


@pytest.mark.parametrize("engine", CHOICE_ENGINES)
@pytest.mark.parametrize("mode", MODES)
async def test_choice_none_fails_on_a_stub_that_calls_anyway(engine: str, mode: Mode) -> None:
    [answer] = await _answers(engine, _tool_fault("call_despite_none"), tool_request(BASE, "none"), mode)
    _fails(lambda: check_no_tool_call(answer), "a tool call although tool choice is none", "calls ['get_weather']")


@pytest.mark.parametrize("engine", CHOICE_ENGINES)
async def test_stream_equivalence_fails_on_deltas_that_join_to_other_arguments(engine: str) -> None:
    streamed, whole = await _answers(engine, _tool_fault("stream_drift"), tool_request(BASE), "stream", "blocking")
    _fails(
        lambda: check_calls_equivalent(streamed, whole),
        "streamed arguments differ from the whole answer's",
        'call 1 (get_weather): the argument deltas join to \'{"city": "drifted"',
    )


def test_stream_equivalence_names_other_tools_and_a_missing_id() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris", "unit": "celsius"}')
    whole = Answer("", (call,), "tool_calls")
    _fails(
        lambda: check_calls_equivalent(Answer("", (call.model_copy(update={"name": "get_time"}),)), whole),
        "streamed calls differ from the whole answer's",
        "streamed ['get_time'], whole ['get_weather']",
    )
    _fails(
        lambda: check_calls_equivalent(Answer("", (call.model_copy(update={"id": None}),)), whole),
        "a streamed call has no id",
        "call 1 (get_weather) streamed without an id",
    )
    reformatted = call.model_copy(update={"arguments": '{"unit":"celsius","city":"Paris"}'})
    check_calls_equivalent(Answer("", (reformatted,)), whole)  # the same JSON, written otherwise


@pytest.mark.parametrize("engine", CHOICE_ENGINES)
@pytest.mark.parametrize("mode", MODES)
async def test_parallel_fails_on_calls_that_share_an_id(engine: str, mode: Mode) -> None:
    [answer] = await _answers(engine, _tool_fault("duplicate_ids"), parallel_request(BASE), mode)
    _fails(lambda: check_parallel_calls(answer, TOOLS), "tool call ids are not distinct", "a result could not name")


def test_parallel_fails_on_a_single_call() -> None:
    call = ToolCall(id="call_1", name="get_time", arguments='{"timezone": "Asia/Tokyo"}')
    _fails(
        lambda: check_parallel_calls(Answer("", (call,), "tool_calls"), TOOLS),
        "fewer than two calls",
        "the answer made 1: ['get_time']",
    )


# -- tools.result_roundtrip ----------------------------------------------------------------------


@pytest.mark.parametrize("engine", TOOL_ENGINES)
async def test_roundtrip_holds_on_every_well_behaved_stub(engine: str) -> None:
    for answer in await _answers(engine, Script(), roundtrip_request(BASE), *MODES):
        check_roundtrip(answer, TOOLS)
        assert answer.text.strip() and not answer.tool_calls


@pytest.mark.parametrize("engine", TOOL_ENGINES)
@pytest.mark.parametrize("mode", MODES)
async def test_roundtrip_fails_on_an_empty_answer_to_the_result(engine: str, mode: Mode) -> None:
    [answer] = await _answers(engine, _tool_fault("empty_after_result"), roundtrip_request(BASE), mode)
    _fails(lambda: check_roundtrip(answer, TOOLS), "an empty answer to a tool's result", "neither content nor a call")


def test_roundtrip_accepts_a_new_well_formed_call_and_fails_a_malformed_one() -> None:
    good = ToolCall(id="call_2", name="get_time", arguments='{"timezone": "Europe/Paris"}')
    check_roundtrip(Answer("", (good,), "tool_calls"), TOOLS)
    _fails(
        lambda: check_roundtrip(Answer("", (good.model_copy(update={"arguments": "{"}),)), TOOLS),
        "tool call arguments are not JSON",
        "call 1 (get_time): ",
    )
