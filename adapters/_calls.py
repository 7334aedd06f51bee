"""Tool calls assembled from a stream's deltas, the same way on every wire that streams them."""

from __future__ import annotations

import json
from typing import Any

from ._types import ToolCall

__all__ = ["CallAssembly", "arguments_text", "function_call"]


def arguments_text(value: Any) -> str:
    """A call's arguments as JSON text: wires that send an object (Anthropic's ``input``, Ollama's
    ``arguments``) are written out; a string is kept as it came, JSON or not, for the checks to judge."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class CallAssembly:
    """The calls of one stream, by the wire's call index, each joined from its pieces as the official SDKs
    join them: the strings of id, name and arguments are concatenated in arrival order."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str | None]] = {}

    def add(self, index: int, *, call_id: str | None = None, name: str | None = None, arguments: str = "") -> None:
        call = self._calls.setdefault(index, [None, "", ""])
        if call_id:
            call[0] = (call[0] or "") + call_id
        call[1] = (call[1] or "") + (name or "")
        call[2] = (call[2] or "") + arguments

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=call_id, name=name or "", arguments=arguments or "")
            for call_id, name, arguments in self._calls.values()
        )


def function_call(call: Any) -> ToolCall:
    """A whole call of the shape OpenAI's message and Ollama's share: ``{"id", "function": {"name",
    "arguments"}}`` (Ollama: no id, arguments an object)."""
    entry = call if isinstance(call, dict) else {}
    function = entry.get("function")
    function = function if isinstance(function, dict) else {}
    call_id, name = entry.get("id"), function.get("name")
    return ToolCall(
        id=call_id if isinstance(call_id, str) else None,
        name=name if isinstance(name, str) else "",
        arguments=arguments_text(function.get("arguments", "")),
    )
