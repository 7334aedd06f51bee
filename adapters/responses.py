"""OpenAI's Responses API (docs/wires.md §6.4): ``POST /v1/responses`` with named, numbered SSE events.

A text answer streams ``response.output_text.delta`` events between
``response.created`` and a terminal event: ``response.completed``,
``response.incomplete`` (the budget ran out: finish reason ``length``) or
``response.failed``; an ``error`` event ends the stream. A tool call is an
output item of its own (``function_call``), its arguments streamed as
``response.function_call_arguments.delta``; structured output is asked for
in ``text.format``. Every event's
``event:`` name must equal its JSON ``type``. Each event carries a
``sequence_number`` counting from 0: a number out of turn means an event was
lost, repeated or reordered, and breaks the stream; events without one are
counted (``responses.sequence_numbers`` judges them), not refused. The wire has
no seed, no stop sequences and no token ids.
"""

from __future__ import annotations

import time
from typing import Any

from conform.stubs.responses import create_app as stub_app

from ._base import FrameFold, Generation, HttpAdapter, Whole
from ._calls import CallAssembly, arguments_text
from ._engines import EngineDescriptor
from ._openai import OpenAIAdapter
from ._sse import SSEEvent
from ._types import Answer, ChatMessage, End, EngineVersion, TaskRequest, Token, TokenEvent, ToolCall, Usage
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = ["ENGINE", "ResponsesAdapter"]

_PLACES = {
    "response.output_item.added": ("output_index",),
    "response.output_item.done": ("output_index",),
    "response.content_part.added": ("item_id", "output_index", "content_index"),
    "response.content_part.done": ("item_id", "output_index", "content_index"),
    "response.output_text.delta": ("item_id", "output_index", "content_index"),
    "response.output_text.done": ("item_id", "output_index", "content_index"),
    "response.function_call_arguments.delta": ("item_id", "output_index"),
    "response.function_call_arguments.done": ("item_id", "output_index"),
}
"""The fields by which each event of an output item says where it belongs; clients index the response being
built by them (the openai SDK's ``responses.stream()`` takes ``output[event.output_index]``)."""

_TERMINAL = frozenset({"response.completed", "response.incomplete"})
"""The events that end a response that did not fail; its status says why it ended (`_finish_reason`)."""


class ResponsesAdapter(OpenAIAdapter):
    """The Responses route of an OpenAI-compatible server; its models, health and errors are OpenAI's."""

    engine = "responses"
    capabilities = Capability.parse(
        "streaming, end_marker, usage, health, chat, non_streaming, sampling, named_models, responses_api, "
        "tools, tool_choice, json_schema, json_object"
    )
    budget_key = ("max_output_tokens",)

    def request_body(self, req: TaskRequest, model: str, *, stream: bool) -> dict[str, Any]:
        items = [item for message in req.messages or () for item in _input_items(message)]
        body: dict[str, Any] = {
            "model": model,
            "input": items or req.prompt,
            "max_output_tokens": req.max_tokens,
            "stream": stream,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "store": False,
        }
        if req.tools:
            body["tools"] = [
                {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
                for t in req.tools
            ]
        if req.tool_choice is not None:
            body["tool_choice"] = req.tool_choice
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
        wanted = req.response_format
        if wanted is not None:
            text_format: dict[str, Any] = {"type": "json_object"}
            if wanted.json_schema is not None:
                text_format = {"type": "json_schema", "name": wanted.name, "schema": wanted.json_schema, "strict": True}
            body["text"] = {"format": text_format}
        return body

    async def engine_version(self) -> EngineVersion:
        """The wire names no engine version; the model is what a report can pin."""
        return EngineVersion(model=await self.default_model())

    async def whole(self, req: TaskRequest) -> Whole:
        body = self.request_body(req, await self.model_for(req), stream=False)
        return Whole(self.api_prefix + "/responses", body, _response_answer)

    async def generation(self, req: TaskRequest) -> Generation:
        body = self.request_body(req, await self.model_for(req), stream=True)
        path = self.api_prefix + "/responses"
        return Generation(path, body, _ResponseStream(self, self.base_url + path), framing="sse_events")


def _input_items(message: ChatMessage) -> list[dict[str, Any]]:
    """A conversation's message as Responses input items: its text, each tool call it made as a
    ``function_call`` item, a tool's result as a ``function_call_output`` naming the call."""
    if message.role == "tool":
        return [{"type": "function_call_output", "call_id": message.tool_call_id, "output": message.content}]
    items: list[dict[str, Any]] = [{"role": message.role, "content": message.content}] if message.content else []
    items += [
        {"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
    ]
    return items


def _function_calls(response: dict[str, Any]) -> tuple[ToolCall, ...]:
    """The ``function_call`` items of a response's output, named by their ``call_id``."""
    output = response.get("output")
    items = output if isinstance(output, list) else []
    return tuple(
        ToolCall(
            id=item.get("call_id") if isinstance(item.get("call_id"), str) else None,
            name=str(item.get("name", "")),
            arguments=arguments_text(item.get("arguments", "")),
        )
        for item in items
        if isinstance(item, dict) and item.get("type") == "function_call"
    )


def _output_text(response: dict[str, Any]) -> str | None:
    """The text of the response's output messages, None when it has no output list."""
    output = response.get("output")
    if not isinstance(output, list):
        return None
    return "".join(
        part.get("text", "")
        for item in output
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "output_text"
    )


def _finish_reason(response: dict[str, Any], calls: bool) -> str | None:
    """``length`` for a response cut at its budget; for a completed one, ``tool_calls`` where it made `calls`,
    else ``stop``."""
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return "length" if reason == "max_output_tokens" else str(reason or "incomplete")
    if status == "completed":
        return "tool_calls" if calls else "stop"
    return None


def _usage(response: dict[str, Any]) -> Usage | None:
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    return Usage.read(usage.get("input_tokens"), usage.get("output_tokens"))


def _response_answer(reply: Any) -> Answer | None:
    if not isinstance(reply, dict):
        return None
    text = _output_text(reply)
    if text is None:
        return None
    calls = _function_calls(reply)
    return Answer(text, calls, _finish_reason(reply, bool(calls)))


class _ResponseStream(FrameFold):
    """The state of one Responses stream: the next sequence number, the events that had none or did not say where
    they belong, the text and the calls."""

    terminator = "a terminal event (response.completed, response.incomplete or response.failed)"

    def __init__(self, adapter: HttpAdapter, url: str) -> None:
        super().__init__(adapter, url)
        self.position = 0
        self.next_number = 0
        self.unnumbered: list[str] = []
        """The types of the events that carried no sequence_number, in order."""
        self.unplaced: dict[str, list[str]] = {}
        """Each event type that came without some of its `_PLACES` fields, and which (the first such event's)."""
        self.calls = CallAssembly()
        self.call_items: dict[str, int] = {}
        """Each function_call item's id, and the place of its call in the answer."""

    def fold(self, event: SSEEvent, at: float) -> list[TokenEvent]:
        frame = self.object(event.data)
        kind = frame.get("type")
        if kind != event.event:
            raise self._violation(f"event {self.frames} is named {event.event!r} but its JSON type is {kind!r}")
        if kind == "error":
            raise self.adapter.stream_error(f"{frame.get('code')}: {frame.get('message')}")
        self._count(frame, kind)
        self._place(frame, kind)
        if kind == "response.output_text.delta":
            delta = frame.get("delta")
            if not isinstance(delta, str):
                raise self._violation(f"event {self.frames} is a text delta without a string delta")
            if not delta:
                return []
            token = Token(self.position, delta, None, at)
            self.position += 1
            return [token]
        if kind == "response.output_item.added":
            self._start_item(frame)
        elif kind == "response.function_call_arguments.delta":
            index = self.call_items.get(str(frame.get("item_id")))
            if index is None:
                raise self._violation(
                    f"event {self.frames} is an arguments delta of item {frame.get('item_id')!r}, which no "
                    "function_call item added"
                )
            self.calls.add(index, arguments=str(frame.get("delta", "")))
        elif kind == "response.failed":
            error = (frame.get("response") or {}).get("error") or {}
            raise self.adapter.stream_error(f"response.failed: {error.get('code')}: {error.get('message')}")
        elif kind in _TERMINAL:
            self.finished = True
            return [self._end(frame)]
        return []  # the lifecycle events around the deltas, and types this reader does not use

    def _start_item(self, frame: dict[str, Any]) -> None:
        """A ``function_call`` item begins a call, named by its ``call_id``; its deltas name it by its item id
        (llama.cpp sends no ``output_index``, so the item id is what both it and OpenAI send)."""
        item = frame.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            index = self.call_items.setdefault(str(item.get("id")), len(self.call_items))
            self.calls.add(index, call_id=item.get("call_id"), name=item.get("name"))

    def _place(self, frame: dict[str, Any], kind: str) -> None:
        """Note which of the fields that say where an event belongs (`_PLACES`) the first event of its type lacks."""
        places = _PLACES.get(kind)
        if places is not None and kind not in self.unplaced:
            missing = [name for name in places if frame.get(name) is None]
            if missing:
                self.unplaced[kind] = missing

    def _count(self, frame: dict[str, Any], kind: str) -> None:
        """Take the event's sequence number, which must be the next; an event without one is noted."""
        number = frame.get("sequence_number")
        if number is None:
            self.unnumbered.append(kind)
            self.next_number += 1
            return
        if number != self.next_number:
            raise self._violation(
                f"event {self.frames} ({kind}) has sequence_number {number!r}, expected {self.next_number}: "
                "an event was lost, repeated or sent out of order"
            )
        self.next_number += 1

    def _end(self, frame: dict[str, Any]) -> End:
        response = frame.get("response")
        if not isinstance(response, dict):
            raise self._violation(f"{frame.get('type')} carries no response object")
        calls = self.calls.calls()
        reason = _finish_reason(response, bool(calls))
        if reason is None:
            raise self._violation(f"{frame.get('type')} carries a response of status {response.get('status')!r}")
        raw = {
            "terminal": frame.get("type"),
            "status": response.get("status"),
            "incomplete_details": response.get("incomplete_details"),
            "usage": response.get("usage"),
            "events": self.frames,
            "unnumbered": self.unnumbered,
            "unplaced": self.unplaced,
        }
        return End(reason, _usage(response), time.monotonic(), raw=raw, tool_calls=calls)

    def _violation(self, message: str) -> WorkerError:
        return WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.url}: {message}", in_stream=True)


ENGINE = EngineDescriptor(
    name="responses",
    adapter=ResponsesAdapter,
    speaks="`/v1/responses` named, numbered events, `/v1/models`",
    notes="OpenAI's Responses API, on any server that speaks it; no seed, stop sequences or token ids",
    stub=stub_app,
    rank=4,
)
"""The ``conform.engines`` entry point of this engine."""
