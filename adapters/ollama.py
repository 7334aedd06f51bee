"""Ollama native API (docs/wires.md §9): NDJSON ``/api/generate`` and ``/api/chat``.

One JSON object per line; the last has ``done: true`` with ``done_reason``,
token counts and nanosecond durations. An ``{"error": …}`` line ends a
started stream (the status stays 200). Sampling settings travel in
``options``; ``stream`` defaults to true. No token ids are exposed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from conform.stubs.ollama import create_app as stub_app

from ._base import FrameFold, Generation, HttpAdapter, Whole
from ._calls import function_call
from ._engines import EngineDescriptor
from ._openai import tool_fields
from ._types import (
    Answer,
    ChatMessage,
    End,
    EngineVersion,
    Health,
    Metrics,
    TaskRequest,
    Token,
    TokenEvent,
    ToolCall,
    Usage,
)
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = ["ENGINE", "OllamaAdapter"]

_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


class OllamaAdapter(HttpAdapter):
    engine = "ollama"
    capabilities = Capability.parse(
        "streaming, end_marker, seed, usage, health, chat, completions, non_streaming, model_digest, "
        "engine_version, top_k, sampling, named_models, stop, json_schema, json_object, tools"
    )
    budget_key = ("options", "num_predict")

    async def list_models(self) -> list[str]:
        return [str(m.get("name")) for m in await self._tags()]

    async def _tags(self) -> list[dict[str, Any]]:
        body = (await self.http.request("GET", "/api/tags")).json()
        models = body.get("models") if isinstance(body, dict) else None
        if not isinstance(models, list):
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/api/tags answered without a models list")
        return [m for m in models if isinstance(m, dict) and "name" in m]

    async def health(self) -> Health:
        """``GET /`` answers ``Ollama is running``: the liveness probe."""
        return await self.probe_health("/", lambda body: "Ollama is running" in str(body))

    async def engine_version(self) -> EngineVersion:
        version = (await self.http.request("GET", "/api/version")).json()
        model = await self.default_model()
        entry = next((m for m in await self._tags() if m.get("name") == model), {})
        digest = entry.get("digest")
        return EngineVersion(
            version=version.get("version") if isinstance(version, dict) else None,
            model=model,
            model_digest=f"sha256:{digest}" if isinstance(digest, str) and digest else None,
        )

    def request_body(self, req: TaskRequest, model: str, *, stream: bool) -> tuple[str, dict[str, Any]]:
        options: dict[str, Any] = {"temperature": req.temperature, "top_p": req.top_p, "num_predict": req.max_tokens}
        if req.seed is not None:
            options["seed"] = req.seed
        if req.top_k is not None:
            options["top_k"] = req.top_k
        if req.stop:
            options["stop"] = list(req.stop)
        body: dict[str, Any] = {"model": model, "stream": stream, "options": options}
        if req.response_format is not None:
            body["format"] = req.response_format.json_schema or "json"
        if req.messages is not None or req.tools:
            messages = req.messages or (ChatMessage(role="user", content=req.prompt or ""),)
            body["messages"] = [_message(m) for m in messages]
            # Ollama has no tool choice: only the tools themselves travel.
            body.update({key: value for key, value in tool_fields(req).items() if key == "tools"})
            return "/api/chat", body
        body["prompt"] = req.prompt
        return "/api/generate", body

    async def whole(self, req: TaskRequest) -> Whole:
        path, body = self.request_body(req, await self.model_for(req), stream=False)
        return Whole(path, body, _answer)

    async def generation(self, req: TaskRequest) -> Generation:
        path, body = self.request_body(req, await self.model_for(req), stream=True)
        return Generation(path, body, _DoneFold(self, self.base_url + path), framing="ndjson")


class _DoneFold(FrameFold):
    """One JSON object per line and token, then one with ``done: true``; tool calls come whole, in lines of
    their own."""

    terminator = "the done:true object"

    def __init__(self, adapter: HttpAdapter, url: str) -> None:
        super().__init__(adapter, url)
        self.position = 0
        self.calls: tuple[ToolCall, ...] = ()

    def fold(self, line: str, at: float) -> list[TokenEvent]:
        if not line.strip():
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION, f"{self.url}: line {self.frames + 1} is blank", in_stream=True
            )
        frame = self.object(line)
        if "error" in frame:
            raise self.adapter.stream_error(str(frame["error"]))
        if frame.get("done") is True:
            self.finished = True
            return _final_events(frame, self.calls)
        calls = _calls(frame)
        if calls:
            self.calls += calls
            return []
        self.position += 1
        return [Token(self.position - 1, _text(frame) or "", None, at)]


def _message(message: ChatMessage) -> dict[str, Any]:
    """A conversation's message as /api/chat takes it: calls with object arguments, results by tool name."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": json.loads(c.arguments)}} for c in message.tool_calls
        ]
    if message.name is not None:
        out["tool_name"] = message.name
    return out


def _calls(frame: dict[str, Any]) -> tuple[ToolCall, ...]:
    message = frame.get("message")
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    return tuple(function_call(call) for call in calls) if isinstance(calls, list) else ()


def _answer(reply: Any) -> Answer | None:
    if not isinstance(reply, dict):
        return None
    reason = reply.get("done_reason")
    return Answer(_text(reply) or "", _calls(reply), reason if isinstance(reason, str) else None)


def _text(frame: dict[str, Any]) -> str | None:
    message = frame.get("message")
    text = message.get("content") if isinstance(message, dict) else frame.get("response")
    return text if isinstance(text, str) else None


def _final_events(frame: dict[str, Any], calls: tuple[ToolCall, ...] = ()) -> list[TokenEvent]:
    now = time.monotonic()
    durations = {
        k.removesuffix("_duration") + "_ms": frame[k] / 1e6 for k in _DURATIONS if isinstance(frame.get(k), int)
    }
    prompt, completion = frame.get("prompt_eval_count"), frame.get("eval_count")
    usage = Usage.read(prompt, completion)
    reason = str(frame.get("done_reason") or "stop")
    events: list[TokenEvent] = [Metrics(durations, now)] if durations else []
    events.append(End(reason, usage, now, raw=frame, tool_calls=calls + _calls(frame)))
    return events


ENGINE = EngineDescriptor(
    name="ollama",
    adapter=OllamaAdapter,
    speaks="NDJSON `/api/generate`, `/api/chat`, `/api/tags`, `/api/version`",
    notes="model digest from `/api/tags`",
    stub=stub_app,
    default_port=11434,
    rank=7,
)
"""The ``conform.engines`` entry point of this engine."""
