"""Anthropic Messages API (docs/wires.md §7): ``POST /v1/messages`` with named SSE events.

The stream is ``message_start``, then per content block ``content_block_start``,
``content_block_delta``+ and ``content_block_stop``, then ``message_delta``
(cumulative usage, ``stop_reason``) and ``message_stop``; ``ping`` anywhere.
Every event's ``event:`` name must equal its JSON ``type``. An ``error`` event
ends the stream, classified by its ``error.type``. No seed, no token ids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from conform.stubs.anthropic import create_app as stub_app

from ._base import AdapterOptions, FrameFold, Generation, HttpAdapter, Whole
from ._calls import CallAssembly, arguments_text
from ._engines import EngineDescriptor
from ._sse import SSEEvent
from ._types import Answer, ChatMessage, End, EngineVersion, Health, TaskRequest, Token, TokenEvent, ToolCall, Usage
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = ["API_VERSION", "AnthropicAdapter"]

API_VERSION = "2023-06-01"

_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
"""``stop_reason`` -> the finish reason every adapter reports."""

_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}

_ERROR_KINDS = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "request_too_large": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "not_found_error": ErrorKind.NOT_FOUND,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "overloaded_error": ErrorKind.OVERLOADED,
    "api_error": ErrorKind.ENGINE_ERROR,
}
"""``error.type`` -> kind, for in-stream errors where the status (200) says nothing."""


class AnthropicAdapter(HttpAdapter):
    engine = "anthropic"
    capabilities = Capability.parse(
        "streaming, end_marker, usage, health, chat, non_streaming, tokenize, top_k, sampling, named_models, stop, "
        "tools, tool_choice"
    )

    def __init__(self, base_url: str, options: AdapterOptions | None = None) -> None:
        super().__init__(base_url.rstrip("/").removesuffix("/v1"), options)

    def auth_headers(self, api_key: str | None) -> Mapping[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def describe_error(self, status: int, body: Any) -> str:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            return f"{error.get('type', 'error')}: {error.get('message', '')}"
        return super().describe_error(status, body)

    async def health(self) -> Health:
        return await self.probe_health(self.models_path, lambda body: isinstance(body, dict))

    async def engine_version(self) -> EngineVersion:
        """The API names no engine version; the model is what a report can pin."""
        return EngineVersion(model=await self.default_model())

    def request_body(self, req: TaskRequest, model: str, *, stream: bool) -> dict[str, Any]:
        messages = [_message(m) for m in req.messages or ()] or [{"role": "user", "content": req.prompt}]
        system = [m["content"] for m in messages if m["role"] == "system"]
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": req.max_tokens,
            "messages": [m for m in messages if m["role"] != "system"],
            "stream": stream,
            "temperature": min(req.temperature, 1.0),
        }
        if system:
            body["system"] = "\n".join(system)
        if req.top_k is not None:
            body["top_k"] = req.top_k
        if req.top_p < 1.0:
            body["top_p"] = req.top_p
        if req.stop:
            body["stop_sequences"] = list(req.stop)
        if req.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in req.tools
            ]
        if req.tool_choice is not None or req.parallel_tool_calls is not None:
            choice: dict[str, Any] = {"type": _TOOL_CHOICES[req.tool_choice or "auto"]}
            if req.parallel_tool_calls is not None and choice["type"] != "none":
                choice["disable_parallel_tool_use"] = not req.parallel_tool_calls
            body["tool_choice"] = choice
        return body

    async def count_prompt_tokens(self, req: TaskRequest) -> int:
        """/v1/messages/count_tokens of the request's model, system and messages."""
        body = self.request_body(req, await self.model_for(req), stream=False)
        counted = {key: body[key] for key in ("model", "system", "messages") if key in body}
        reply = (await self.http.request("POST", "/v1/messages/count_tokens", json_body=counted)).json()
        count = reply.get("input_tokens") if isinstance(reply, dict) else None
        if not isinstance(count, int):
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/v1/messages/count_tokens answered without input_tokens"
            )
        return count

    async def whole(self, req: TaskRequest) -> Whole:
        body = self.request_body(req, await self.model_for(req), stream=False)
        return Whole("/v1/messages", body, _message_answer)

    async def generation(self, req: TaskRequest) -> Generation:
        body = self.request_body(req, await self.model_for(req), stream=True)
        fold = _MessageStream(self, self.base_url + "/v1/messages")
        return Generation("/v1/messages", body, fold, framing="sse_events")


def _input_tokens(usage: dict[str, Any]) -> int | None:
    """All the prompt's tokens: ``input_tokens`` counts only those neither read from nor written to the
    prompt cache, which come in fields of their own."""
    counts = [usage.get(key) for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")]
    if not isinstance(counts[0], int):
        return None
    return sum(count for count in counts if isinstance(count, int))


def _text_blocks(reply: Any) -> str | None:
    """The text of a message's text blocks."""
    content = reply.get("content") if isinstance(reply, dict) else None
    if not isinstance(content, list):
        return None
    return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def _message(message: ChatMessage) -> dict[str, Any]:
    """A conversation's message in Messages' shape: tool calls as ``tool_use`` blocks, a tool's result as a
    user message holding a ``tool_result`` block."""
    if message.role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}
        return {"role": "user", "content": [result]}
    if not message.tool_calls:
        return {"role": message.role, "content": message.content}
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": json.loads(c.arguments)} for c in message.tool_calls
    ]
    return {"role": message.role, "content": blocks}


def _message_answer(reply: Any) -> Answer | None:
    """A message whole: its text blocks, its ``tool_use`` blocks and its stop reason."""
    text = _text_blocks(reply)
    if text is None:
        return None
    calls = tuple(
        ToolCall(id=b.get("id"), name=str(b.get("name", "")), arguments=arguments_text(b.get("input", {})))
        for b in reply["content"]
        if isinstance(b, dict) and b.get("type") == "tool_use"
    )
    reason = reply.get("stop_reason")
    return Answer(text, calls, _FINISH_REASONS.get(reason, reason) if isinstance(reason, str) else None)


class _MessageStream(FrameFold):
    """The state of one Messages stream: which events came, the usage so far, the stop reason."""

    terminator = "message_stop"

    def __init__(self, adapter: HttpAdapter, url: str) -> None:
        super().__init__(adapter, url)
        self.position = 0
        self.started = False
        self.stop_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.calls = CallAssembly()
        self.started_input: dict[int, Any] = {}
        """The ``input`` each tool_use block started with, by block index (its value if no delta follows)."""

    def fold(self, event: SSEEvent, at: float) -> list[TokenEvent]:
        frame = self.object(event.data)
        name = event.event
        if frame.get("type") != name:
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION,
                f"{self.url}: event {self.frames} is named {name!r} but its JSON type is {frame.get('type')!r}",
                in_stream=True,
            )
        if name == "error":
            raise self._error(frame)
        if name == "message_start":
            self.started = True
            self.input_tokens = _input_tokens((frame.get("message") or {}).get("usage") or {})
            return []
        if not self.started and name != "ping":
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION, f"{self.url}: {name!r} arrived before message_start", in_stream=True
            )
        if name == "content_block_start":
            self._start_block(frame)
        elif name == "content_block_delta":
            delta = frame.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                token = Token(self.position, str(delta["text"]), None, at)
                self.position += 1
                return [token]
            if delta.get("type") == "input_json_delta":
                index = self._block_index(frame)
                if index not in self.started_input:
                    raise WorkerError(
                        ErrorKind.PROTOCOL_VIOLATION,
                        f"{self.url}: event {self.frames} is an input_json_delta of block {index}, "
                        "which did not start as a tool_use block",
                        in_stream=True,
                    )
                self.calls.add(index, arguments=str(delta.get("partial_json", "")))
        elif name == "message_delta":
            self.stop_reason = (frame.get("delta") or {}).get("stop_reason") or self.stop_reason
            output = (frame.get("usage") or {}).get("output_tokens")
            if isinstance(output, int):
                self.output_tokens = output  # cumulative, not an increment
        elif name == "message_stop":
            self.finished = True
            return [self._end(frame)]
        return []  # ping, block start/stop, unknown event types (the docs require tolerating them)

    def _block_index(self, frame: dict[str, Any]) -> int:
        index = frame.get("index")
        if type(index) is not int:
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION,
                f"{self.url}: event {self.frames} ({frame.get('type')}) has no integer index",
                in_stream=True,
            )
        return index

    def _start_block(self, frame: dict[str, Any]) -> None:
        block = frame.get("content_block") or {}
        if block.get("type") == "tool_use":
            index = self._block_index(frame)
            self.calls.add(index, call_id=block.get("id"), name=block.get("name"))
            self.started_input[index] = block.get("input", {})

    def _tool_calls(self) -> tuple[ToolCall, ...]:
        """Each block's joined ``partial_json``, or the input it started with when no delta came."""
        started = list(self.started_input.values())
        return tuple(
            call if call.arguments else call.model_copy(update={"arguments": arguments_text(first)})
            for call, first in zip(self.calls.calls(), started, strict=True)
        )

    def _end(self, frame: dict[str, Any]) -> End:
        if self.stop_reason is None:
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION, f"{self.url}: message_stop without a stop_reason", in_stream=True
            )
        usage = Usage.read(self.input_tokens, self.output_tokens)
        reason = _FINISH_REASONS.get(self.stop_reason, self.stop_reason)
        raw = {"stop_reason": self.stop_reason, **frame}
        return End(reason, usage, time.monotonic(), raw=raw, tool_calls=self._tool_calls())

    def _error(self, frame: dict[str, Any]) -> WorkerError:
        error = frame.get("error")
        error = error if isinstance(error, dict) else {}
        kind = _ERROR_KINDS.get(str(error.get("type")), ErrorKind.ENGINE_ERROR)
        message = self.adapter.stream_error(f"{error.get('type')}: {error.get('message')}").message
        return WorkerError(kind, message, status=200, in_stream=True)


ENGINE = EngineDescriptor(
    name="anthropic",
    adapter=AnthropicAdapter,
    speaks="`/v1/messages` named events, `x-api-key`, `anthropic-version`",
    notes="no seed, so seeded checks are skipped",
    stub=stub_app,
    rank=5,
)
"""The ``conform.engines`` entry point of this engine."""
