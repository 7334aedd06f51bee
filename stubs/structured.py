"""Tools and structured output, decided once for every stub wire.

Each wire reads what a request asks for in its own shape (``tool_ask_openai``,
``tool_ask_anthropic``; ``structured_schema`` reads every wire's output
format) and writes the answer in its own frames; what the answer is — which
calls with which arguments, what JSON — is decided here, with the script's
tool and structured-output violations applied.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .script import Fault, StructuredViolationFault, ToolViolation, ToolViolationFault
from .tokens import StubToken

__all__ = [
    "StubCall",
    "ToolAsk",
    "example_instance",
    "json_tokens",
    "planned_calls",
    "streamed_pieces",
    "structured_schema",
    "structured_text",
    "tool_ask_anthropic",
    "tool_ask_openai",
    "tool_ask_responses",
    "violates",
]

_PIECE = 4
"""Characters of JSON per streamed token or argument delta: small enough that every value is cut somewhere."""

_EXAMPLE_TEXT = "conform"
_DRIFTED_TEXT = "drifted"


@dataclass(frozen=True, slots=True)
class StubCall:
    id: str
    name: str
    arguments: str
    """JSON text (not JSON, under an invalid_arguments violation)."""

    def input(self) -> Any:
        """The arguments as an object, for wires that send one (Anthropic, Ollama); the text where it is not
        JSON, as a broken engine would send it."""
        try:
            return json.loads(self.arguments)
        except ValueError:
            return self.arguments


@dataclass(frozen=True, slots=True)
class ToolAsk:
    """What a request asks of tools, in any wire's terms."""

    tools: dict[str, Any]
    """Each declared tool's parameter schema, by name, in declaration order."""
    choice: str = "auto"
    """auto, required, none, or the name of the one tool to call."""
    parallel: bool = False
    """Several calls in one answer are allowed (the stub then calls up to two tools)."""
    after_result: bool = False
    """The conversation ends with a tool's result: the answer is text."""


def violations(faults: Sequence[Fault]) -> set[ToolViolation]:
    return {f.violation for f in faults if isinstance(f, ToolViolationFault)}


def tool_ask_openai(body: dict[str, Any]) -> ToolAsk:
    """OpenAI chat's (and Ollama's) ``tools``, ``tool_choice``, ``parallel_tool_calls``, and a last message from
    a tool."""
    tools = {
        str(t["function"]["name"]): t["function"].get("parameters", {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    }
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        choice = str((choice.get("function") or {}).get("name", "required"))
    messages = body.get("messages") or [{}]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    parallel = body.get("parallel_tool_calls") is True
    return ToolAsk(tools, str(choice), parallel, last.get("role") == "tool")


def tool_ask_anthropic(body: dict[str, Any]) -> ToolAsk:
    """Messages' ``tools``, ``tool_choice`` (auto, any, none, tool) and a last message of tool results."""
    tools = {str(t["name"]): t.get("input_schema", {}) for t in body.get("tools") or [] if isinstance(t, dict)}
    found = body.get("tool_choice")
    choice: dict[str, Any] = found if isinstance(found, dict) else {}
    kind = str(choice.get("type", "auto"))
    named = {"any": "required", "tool": str(choice.get("name", ""))}.get(kind, kind)
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else None
    after = isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    return ToolAsk(tools, named, choice.get("disable_parallel_tool_use") is False, after)


def tool_ask_responses(body: dict[str, Any]) -> ToolAsk:
    """The Responses API's flat ``tools`` (``{"type": "function", "name", "parameters"}``), ``tool_choice``
    (auto, required, none, or ``{"type": "function", "name"}``) and a last input item of a tool's output."""
    tools = {
        str(t["name"]): t.get("parameters", {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function" and "name" in t
    }
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        choice = str(choice.get("name", "required"))
    given = body.get("input")
    last = given[-1] if isinstance(given, list) and given and isinstance(given[-1], dict) else {}
    parallel = body.get("parallel_tool_calls") is True
    return ToolAsk(tools, str(choice), parallel, last.get("type") == "function_call_output")


def planned_calls(ask: ToolAsk, faults: Sequence[Fault], number: int) -> list[StubCall]:
    """The calls the stub answers with (none: it answers with text)."""
    broken = violations(faults)
    if not ask.tools or ask.after_result:
        return []
    if ask.choice == "none" and "call_despite_none" not in broken:
        return []
    if ask.choice == "required" and "ignore_required" in broken:
        return []
    names = [ask.choice] if ask.choice in ask.tools else list(ask.tools)[: 2 if ask.parallel else 1]
    calls = []
    for k, name in enumerate(names):
        arguments = json.dumps(example_instance(ask.tools[name]))
        if "invalid_arguments" in broken:
            arguments = arguments[: max(1, len(arguments) - 3)]
        if "arguments_off_schema" in broken:
            arguments = "{}"
        call_id = f"call_conform{number}_{0 if 'duplicate_ids' in broken else k}"
        calls.append(StubCall(call_id, "undeclared_tool" if "undeclared_name" in broken else name, arguments))
    return calls


def streamed_pieces(call: StubCall, faults: Sequence[Fault]) -> list[str]:
    """A call's arguments as the deltas a stream sends (other arguments under a stream_drift violation)."""
    arguments = call.arguments
    if "stream_drift" in violations(faults):
        arguments = arguments.replace(_EXAMPLE_TEXT, _DRIFTED_TEXT) if _EXAMPLE_TEXT in arguments else "{}"
    return [arguments[i : i + _PIECE] for i in range(0, len(arguments), _PIECE)] or [""]


def structured_schema(body: Any) -> dict[str, Any] | None:
    """The schema a request's output must satisfy, wherever its wire asks: OpenAI's ``response_format``, the
    Responses API's ``text.format``, llama.cpp's ``json_schema``, Ollama's ``format`` (JSON mode: the schema of
    any object); None for free text."""
    if not isinstance(body, dict):
        return None
    text = body.get("text")
    found = _format_schema(text.get("format") if isinstance(text, dict) else None, None)
    if found is None:
        found = _format_schema(body.get("response_format"), "json_schema")
    if found is not None:
        return found
    if isinstance(body.get("json_schema"), dict):
        return dict(body["json_schema"])
    wanted = body.get("format")
    if wanted == "json":
        return {"type": "object"}
    return dict(wanted) if isinstance(wanted, dict) else None


def _format_schema(wanted: Any, holder: str | None) -> dict[str, Any] | None:
    """The schema of one of OpenAI's format objects: ``json_schema`` with its ``schema`` (inline, as the Responses
    API sends it, or under `holder`, as chat's ``response_format`` does), or ``json_object``; None otherwise."""
    if not isinstance(wanted, dict):
        return None
    if wanted.get("type") == "json_object":
        return {"type": "object"}
    if wanted.get("type") != "json_schema":
        return None
    inner = wanted.get(holder) if holder is not None else wanted
    return dict((inner if isinstance(inner, dict) else {}).get("schema") or {})


def structured_text(schema: dict[str, Any], faults: Sequence[Fault]) -> str:
    """The JSON text the stub answers a structured request with."""
    instance = example_instance(schema)
    for fault in faults:
        if isinstance(fault, StructuredViolationFault):
            instance = [instance] if fault.violation == "not_object" else violates(schema, instance)
    return json.dumps(instance)


def json_tokens(text: str) -> list[StubToken]:
    """JSON text as stub tokens of a few characters each."""
    pieces = [text[i : i + _PIECE] for i in range(0, len(text), _PIECE)]
    return [StubToken(100 + zlib.crc32(piece.encode()) % 100_000, piece, -0.01) for piece in pieces]


def example_instance(schema: Any) -> Any:
    """A small instance valid against `schema`, for the keywords conform's checks and common tools use
    (type, properties, required, items, minItems, enum, const, anyOf/oneOf); the same for the same schema."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return example_instance(schema[key][0])
    kind = schema.get("type", "object" if "properties" in schema else "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {name: example_instance(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [example_instance(schema.get("items", {})) for _ in range(max(1, int(schema.get("minItems", 1))))]
    defaults: dict[str, Any] = {"string": _EXAMPLE_TEXT, "integer": 1, "number": 1.5, "boolean": True, "null": None}
    return defaults.get(str(kind), _EXAMPLE_TEXT)


def violates(schema: dict[str, Any], instance: Any) -> Any:
    """The instance with the schema's first required property removed (else as an array): JSON that a
    validator refuses."""
    required = schema.get("required") or []
    if isinstance(instance, dict) and required:
        return {key: value for key, value in instance.items() if key != required[0]}
    return [instance]
