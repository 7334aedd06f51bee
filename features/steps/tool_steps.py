"""Steps of the tools and structured features. Thin: each asks through harness/tools.py and calls its check."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from pytest_bdd import parsers, then, when

from conform.adapters import Answer, TaskRequest
from conform.harness.runtime import ScenarioRuntime
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

from .engine_steps import completion_request


def _mode(text: str) -> Mode:
    if text not in ("blocking", "stream"):
        raise ValueError(f"a mode is blocking or stream, not {text!r}")
    return cast(Mode, text)


def _answered(phrase: str, build: Callable[[TaskRequest], TaskRequest]) -> Callable[..., Answer]:
    """A When step "<phrase>, answered <mode>": the request `build` makes, answered in that mode."""

    @when(
        parsers.parse(phrase + ", answered {mode:Mode}", extra_types={"Mode": _mode}),
        target_fixture="answer",
        stacklevel=2,  # the step belongs to the module that calls _answered, not to this function
    )
    def step(conform_runtime: ScenarioRuntime, mode: Mode) -> Answer:
        request = build(completion_request(conform_runtime, 256))
        return conform_runtime.run(answer_in(conform_runtime.adapter, request, mode))

    return step


ask_json_schema = _answered(
    "I ask for a forecast constrained to a JSON schema with nested objects, arrays, enums and required fields",
    json_schema_request,
)
ask_json_object = _answered("I ask for a JSON object in JSON mode", json_object_request)
ask_required_call = _answered("I declare two tools and require a call", tool_request)
ask_no_call = _answered("I declare two tools and forbid calling them", lambda base: tool_request(base, "none"))
ask_after_result = _answered("I send back the result of a weather call", roundtrip_request)
ask_parallel = _answered("I declare two tools, allow parallel calls and ask for both", parallel_request)


@then("the output parses as JSON and validates against that schema")
def output_validates(answer: Answer) -> None:
    check_json_schema(answer, FORECAST_SCHEMA)


@then("the output is one JSON object")
def output_is_an_object(answer: Answer) -> None:
    check_json_object(answer)


@then(
    "the answer calls a declared tool with arguments valid against its parameters, and its finish reason says tool call"
)
def calls_a_declared_tool(answer: Answer) -> None:
    check_tool_call(answer, TOOLS)


@then("the answer calls no tool")
def calls_no_tool(answer: Answer) -> None:
    check_no_tool_call(answer)


@then("the answer is content, or a call of a declared tool with valid arguments")
def answers_the_result(answer: Answer) -> None:
    check_roundtrip(answer, TOOLS)


@then("the answer makes two or more well-formed calls with distinct ids")
def calls_in_parallel(answer: Answer) -> None:
    check_parallel_calls(answer, TOOLS)


@when("I declare two tools and require a call, answered whole and streamed", target_fixture="both")
def ask_whole_and_streamed(conform_runtime: ScenarioRuntime) -> tuple[Answer, Answer]:
    request = tool_request(completion_request(conform_runtime, 256))
    adapter = conform_runtime.adapter
    return conform_runtime.run(answer_in(adapter, request, "stream")), conform_runtime.run(
        answer_in(adapter, request, "blocking")
    )


@then("the streamed calls, their argument deltas joined, are the whole answer's calls")
def streamed_calls_are_whole(both: tuple[Answer, Answer]) -> None:
    check_calls_equivalent(*both)
