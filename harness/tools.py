"""Tool calls and structured output: the requests the checks send, how an answer is taken (whole or
streamed), and the checks, each a plain function that raises CheckFailure with a detail a vendor can act on.

Schemas are validated exactly, with jsonschema (Draft 2020-12); a failure names the JSON pointer of the
first violation and the keyword it broke.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from conform.adapters import Answer, ChatMessage, HttpAdapter, ResponseFormat, TaskRequest, ToolCall, ToolSpec

from .checks import CheckFailure, stream_completed
from .stream import collect

__all__ = [
    "FORECAST_SCHEMA",
    "TOOLS",
    "Mode",
    "answer_in",
    "check_calls_equivalent",
    "check_json_object",
    "check_json_schema",
    "check_no_tool_call",
    "check_parallel_calls",
    "check_roundtrip",
    "check_tool_call",
    "json_object_request",
    "json_schema_request",
    "parallel_request",
    "roundtrip_request",
    "tool_request",
]

Mode = Literal["blocking", "stream"]
"""How a request is answered: whole (``blocking``), or streamed and assembled."""

TOOL_FINISH = "tool_calls"
"""The finish reason of an answer that calls tools, as every adapter reports it (Anthropic's ``tool_use``)."""

FORECAST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "forecast": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {"day": {"type": "string", "enum": ["mon", "tue", "wed"]}, "high": {"type": "integer"}},
                "required": ["day", "high"],
                "additionalProperties": False,
            },
        },
        "location": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
            "required": ["lat", "lon"],
            "additionalProperties": False,
        },
    },
    "required": ["city", "unit", "forecast", "location"],
    "additionalProperties": False,
}
"""Nested objects, an array of objects, enums, required fields, no additional properties."""

TOOLS = (
    ToolSpec(
        name="get_weather",
        description="The current weather in a city.",
        parameters={
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    ),
    ToolSpec(
        name="get_time",
        description="The current time in a time zone.",
        parameters={
            "type": "object",
            "properties": {"timezone": {"type": "string", "description": "An IANA time zone, e.g. Asia/Tokyo"}},
            "required": ["timezone"],
            "additionalProperties": False,
        },
    ),
)
"""The two tools every tool check declares."""

_BUDGET = 128
"""Tokens for a tool call or a small JSON object: several times what either takes."""
_SCHEMA_BUDGET = 256
"""Tokens for the forecast: room for every property of its schema, nested ones included."""

_PAST_CALL = ToolCall(id="call_conform_1", name="get_weather", arguments='{"city": "Paris", "unit": "celsius"}')
_RESULT = '{"temperature": 18, "unit": "celsius", "sky": "clear"}'


def _chat(text: str, base: TaskRequest, **fields: Any) -> TaskRequest:
    """`base` (the target's model, seed, greedy decoding) asking `text` as one user message."""
    update = {"messages": (ChatMessage(role="user", content=text),), "prompt": None, "max_tokens": _BUDGET}
    update.update(fields)
    return base.model_copy(update=update)


def json_schema_request(base: TaskRequest) -> TaskRequest:
    schema = ResponseFormat(type="json_schema", json_schema=FORECAST_SCHEMA, name="forecast")
    text = "Give the weather for Paris as JSON: the city, the unit, a forecast of up to three days, and the location."
    return _chat(text, base, response_format=schema, max_tokens=_SCHEMA_BUDGET)


def json_object_request(base: TaskRequest) -> TaskRequest:
    text = "Describe Paris as a JSON object with the keys name and country."
    return _chat(text, base, response_format=ResponseFormat(type="json_object"))


def tool_request(base: TaskRequest, choice: Literal["required", "none", "auto"] = "required") -> TaskRequest:
    return _chat("What is the weather in Paris? Use a tool.", base, tools=TOOLS, tool_choice=choice)


def parallel_request(base: TaskRequest) -> TaskRequest:
    text = "What is the weather in Paris, and what time is it in Tokyo? Call both tools at once."
    return _chat(text, base, tools=TOOLS, tool_choice="required", parallel_tool_calls=True)


def roundtrip_request(base: TaskRequest) -> TaskRequest:
    """A conversation in which the assistant called get_weather and the tool's result came back."""
    messages = (
        ChatMessage(role="user", content="What is the weather in Paris?"),
        ChatMessage(role="assistant", content="", tool_calls=(_PAST_CALL,)),
        ChatMessage(role="tool", content=_RESULT, tool_call_id=_PAST_CALL.id, name=_PAST_CALL.name),
    )
    return base.model_copy(
        update={"messages": messages, "prompt": None, "max_tokens": _BUDGET, "tools": TOOLS, "tool_choice": "auto"}
    )


async def answer_in(adapter: HttpAdapter, request: TaskRequest, mode: Mode) -> Answer:
    """The request answered whole, or streamed to its end and assembled; a failed stream fails the check."""
    if mode == "blocking":
        return await adapter.answer(request)
    record = await collect(adapter, request)
    stream_completed(record)
    assert record.end is not None
    return Answer(record.text, record.end.tool_calls, record.end.finish_reason)


def _parsed(text: str, title: str, where: str = "") -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CheckFailure(title, f"{where}{exc} in {text[:200]!r}") from None


def _pointer(error: ValidationError) -> str:
    return "/" + "/".join(str(part) for part in error.absolute_path)


def _validate(instance: Any, schema: dict[str, Any], title: str, where: str = "") -> None:
    error = best_match(Draft202012Validator(schema).iter_errors(instance))
    if error is not None:
        detail = f"{where}at {_pointer(error)} the {error.validator!r} keyword fails: {error.message}"
        raise CheckFailure(title, detail[:500])


def _output(answer: Answer) -> Any:
    """The output's JSON; output that is not JSON fails, saying when the token budget cut it."""
    if answer.finish_reason == "length":
        cut = "the output was cut at the token budget (finish reason length) before its JSON closed: "
        return _parsed(answer.text, "the output is not JSON", cut)
    return _parsed(answer.text, "the output is not JSON")


def check_json_schema(answer: Answer, schema: dict[str, Any]) -> None:
    """The output parses as JSON and validates against `schema` (Draft 2020-12)."""
    _validate(_output(answer), schema, "the output violates the schema")


def check_json_object(answer: Answer) -> None:
    """The output is one JSON object."""
    value = _output(answer)
    if not isinstance(value, dict):
        raise CheckFailure(
            "the output is not a JSON object", f"JSON mode gave a JSON {type(value).__name__}: {answer.text[:200]!r}"
        )


def _well_formed(call: ToolCall, tools: Sequence[ToolSpec], number: int) -> None:
    """The call names a declared tool, and its arguments parse and validate against that tool's parameters."""
    declared = {tool.name: tool for tool in tools}
    if call.name not in declared:
        raise CheckFailure(
            "a call of a tool the request never declared",
            f"call {number} names {call.name!r}; the request declared {sorted(declared)}",
        )
    where = f"call {number} ({call.name}): "
    arguments = _parsed(call.arguments, "tool call arguments are not JSON", where)
    _validate(arguments, declared[call.name].parameters, "tool call arguments violate the tool's schema", where)


def check_tool_call(answer: Answer, tools: Sequence[ToolSpec]) -> None:
    """With a call required: the answer calls a declared tool with valid arguments, and says tool_calls."""
    if not answer.tool_calls:
        raise CheckFailure(
            "no tool call although one was required",
            f"tool_choice required, yet the answer is text {answer.text[:120]!r} with finish reason "
            f"{answer.finish_reason!r}",
        )
    for number, call in enumerate(answer.tool_calls, 1):
        _well_formed(call, tools, number)
    if answer.finish_reason != TOOL_FINISH:
        raise CheckFailure(
            "the finish reason does not say tool call",
            f"the answer calls {[c.name for c in answer.tool_calls]} but its finish reason is "
            f"{answer.finish_reason!r}, expected the wire's tool-call reason ({TOOL_FINISH!r}, Anthropic 'tool_use')",
        )


def check_no_tool_call(answer: Answer) -> None:
    """With tool choice none: no call comes back."""
    if answer.tool_calls or answer.finish_reason == TOOL_FINISH:
        raise CheckFailure(
            "a tool call although tool choice is none",
            f"the answer calls {[c.name for c in answer.tool_calls]} (finish reason {answer.finish_reason!r})",
        )


def check_calls_equivalent(streamed: Answer, whole: Answer) -> None:
    """The streamed calls (ids, names, argument deltas joined) are the whole answer's calls: the same tools
    with the same arguments, each with an id where the whole one has one."""
    names = [c.name for c in streamed.tool_calls], [c.name for c in whole.tool_calls]
    if not whole.tool_calls:
        raise CheckFailure("no tool call to compare", f"the whole answer made no call (text {whole.text[:120]!r})")
    if names[0] != names[1]:
        raise CheckFailure("streamed calls differ from the whole answer's", f"streamed {names[0]}, whole {names[1]}")
    for number, (one, other) in enumerate(zip(streamed.tool_calls, whole.tool_calls, strict=True), 1):
        if _json_or_text(one.arguments) != _json_or_text(other.arguments):
            raise CheckFailure(
                "streamed arguments differ from the whole answer's",
                f"call {number} ({one.name}): the argument deltas join to {one.arguments[:200]!r}, the whole answer "
                f"has {other.arguments[:200]!r}",
            )
        if other.id and not one.id:
            raise CheckFailure("a streamed call has no id", f"call {number} ({one.name}) streamed without an id")


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def check_roundtrip(answer: Answer, tools: Sequence[ToolSpec]) -> None:
    """After a tool's result, the answer is content, or a new well-formed call; never an empty message."""
    if answer.tool_calls:
        for number, call in enumerate(answer.tool_calls, 1):
            _well_formed(call, tools, number)
        return
    if not answer.text.strip():
        raise CheckFailure(
            "an empty answer to a tool's result",
            "after the tool's result the answer has neither content nor a call "
            f"(finish reason {answer.finish_reason!r})",
        )


def check_parallel_calls(answer: Answer, tools: Sequence[ToolSpec]) -> None:
    """With parallel calls allowed and asked for: two or more calls, each well-formed, with distinct ids."""
    calls = answer.tool_calls
    if len(calls) < 2:
        raise CheckFailure(
            "fewer than two calls",
            f"parallel calls were asked for; the answer made {len(calls)}: {[c.name for c in calls]}",
        )
    for number, call in enumerate(calls, 1):
        _well_formed(call, tools, number)
    ids = [c.id for c in calls]
    if None in ids or len(set(ids)) != len(ids):
        raise CheckFailure(
            "tool call ids are not distinct", f"the calls' ids are {ids}: a result could not name its call"
        )
