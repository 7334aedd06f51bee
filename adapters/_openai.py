"""The OpenAI wire format, once: request bodies, chunk folding and the adapter the OpenAI family shares.

Three engines speak it (docs/wires.md §3, §6, §8): OpenAI itself, vLLM's
OpenAI-compatible server and llama-swap's proxy. They differ in endpoints
around generation (health, version, token ids, management), never in how a
chunk is read, so the chunk reading lives here and the engine modules only
override what differs.

A stream succeeds when a choice names its ``finish_reason``; ``[DONE]`` alone
proves nothing (vLLM and TGI send it after an error). Every chunk with a
truthy ``error`` key is an in-stream engine error, as the openai SDK treats it.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from conform.stubs.openai import create_openai_app as stub_app

from ._base import AdapterOptions, FrameFold, Generation, HttpAdapter, Whole, field_text
from ._calls import CallAssembly, arguments_text, function_call
from ._engines import EngineDescriptor
from ._types import (
    Answer,
    ChatMessage,
    End,
    EngineVersion,
    Health,
    TaskRequest,
    Token,
    TokenEvent,
    Usage,
    frame_tokens,
)
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = ["ENGINE", "OpenAIAdapter", "OpenAIStream", "api_root", "chat_message", "response_format", "tool_fields"]

DONE = "[DONE]"


def api_root(url: str) -> str:
    """The server root of an OpenAI-style base URL: users give either ``http://h:p`` or ``http://h:p/v1``."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


class OpenAIStream(FrameFold):
    """Folds the chunks of one OpenAI-family stream into token events and what the end must report."""

    def __init__(self, adapter: HttpAdapter, url: str) -> None:
        super().__init__(adapter, url)
        self.position = 0
        self.finish_reason: str | None = None
        self.finish_on_last_chunk = False
        self.usage: dict[str, Any] | None = None
        self.usage_chunk = False
        """The usage came in a chunk of its own, with empty choices (stream_options.include_usage)."""
        self.done_marker = False
        self.system_fingerprint: str | None = None
        self.model: str | None = None
        self.ids: set[str] = set()
        self.loading_chunks = 0
        self.calls = CallAssembly()

    def fold(self, data: str, at: float) -> list[TokenEvent]:
        """The events of one SSE data string: a chunk's tokens, or the End at ``[DONE]``."""
        if data == DONE:
            self.done_marker = True
            self.finished = True
            return [self.final()]
        return list(self.chunk(self.object(data), at))

    def chunk(self, frame: dict[str, Any], at: float) -> list[Token]:
        """The tokens of one chunk, which arrived `at`; raises WorkerError for an error chunk or a non-chunk."""
        error = frame.get("error")
        if error:
            raise self.adapter.stream_error(str(error.get("message", error) if isinstance(error, dict) else error))
        choices = frame.get("choices")
        usage = frame.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            self.usage_chunk = choices == []
        if not isinstance(choices, list):
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION,
                f"{self.url}: chunk {self.frames} has no choices array: {str(frame)[:120]}",
                in_stream=True,
            )
        if "id" not in frame:
            # llama-swap's loading-state chunks (sendLoadingState): progress, not tokens (§8.4).
            self.loading_chunks += 1
            return []
        self.ids.add(str(frame["id"]))
        fingerprint = frame.get("system_fingerprint")
        if isinstance(fingerprint, str) and fingerprint:
            self.system_fingerprint = fingerprint
        if isinstance(frame.get("model"), str):
            self.model = frame["model"]
        if choices:
            self.finish_on_last_chunk = False  # the usage chunk (no choices) does not count as the last
        tokens: list[Token] = []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            tokens.extend(self._choice_tokens(choice, at))
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self.finish_reason = reason
                self.finish_on_last_chunk = True
        return tokens

    def _choice_tokens(self, choice: dict[str, Any], at: float) -> list[Token]:
        delta = choice.get("delta")
        if isinstance(delta, dict) and delta.get("tool_calls"):
            self._fold_calls(delta["tool_calls"])
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        text = text if isinstance(text, str) else ""
        raw_ids = choice.get("token_ids")
        ids = [i for i in raw_ids if type(i) is int] if isinstance(raw_ids, list) else []
        if not text and not ids:
            return []  # the role-only first chunk, the finish chunk
        tokens = frame_tokens(self.position, text, ids, at, _logprobs(choice.get("logprobs")))
        self.position = tokens[-1].index + 1
        return tokens

    def _fold_calls(self, deltas: Any) -> None:
        """A chunk's tool call deltas, each naming the call it continues by its index."""
        for delta in deltas if isinstance(deltas, list) else [deltas]:
            index = delta.get("index") if isinstance(delta, dict) else None
            if type(index) is not int:
                raise WorkerError(
                    ErrorKind.PROTOCOL_VIOLATION,
                    f"{self.url}: chunk {self.frames} has a tool call delta without an integer index: {delta!r}"[:300],
                    in_stream=True,
                )
            function = delta.get("function") or {}
            self.calls.add(
                index,
                call_id=delta.get("id") if isinstance(delta.get("id"), str) else None,
                name=function.get("name") if isinstance(function.get("name"), str) else None,
                arguments=arguments_text(function["arguments"]) if function.get("arguments") is not None else "",
            )

    def end(self) -> list[TokenEvent]:
        """A body that ended without ``[DONE]`` ends the stream all the same (the End says so)."""
        return [self.final()]

    def final(self) -> End:
        """The End of a stream that stopped (at ``[DONE]`` or at EOF); no finish_reason is a protocol violation."""
        if self.finish_reason is None:
            where = "[DONE]" if self.done_marker else "the end of the body"
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION,
                f"{self.url}: the stream reached {where} without a finish_reason on any choice",
                in_stream=True,
            )
        usage = None
        if self.usage is not None:
            prompt, completion = self.usage.get("prompt_tokens"), self.usage.get("completion_tokens")
            usage = Usage.read(prompt, completion)
        raw = {
            "finish_reason": self.finish_reason,
            "finish_on_last_chunk": self.finish_on_last_chunk,
            "usage": self.usage,
            "usage_chunk": self.usage_chunk,
            "done_marker": self.done_marker,
            "system_fingerprint": self.system_fingerprint,
            "model": self.model,
            "ids": sorted(self.ids),
            "chunks": self.frames,
            "loading_chunks": self.loading_chunks,
        }
        return End(self.finish_reason, usage, time.monotonic(), raw=raw, tool_calls=self.calls.calls())


def _choice_answer(reply: Any) -> Answer | None:
    """The first choice whole: its text, its message's tool calls and its finish reason."""
    choices = reply.get("choices") if isinstance(reply, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    if choice is None:
        return None
    message = choice.get("message")
    text = field_text(message, "content") if isinstance(message, dict) else field_text(choice, "text")
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    reason = choice.get("finish_reason")
    return Answer(
        text or "",
        tuple(function_call(call) for call in calls) if isinstance(calls, list) else (),
        reason if isinstance(reason, str) else None,
    )


def chat_message(message: ChatMessage) -> dict[str, Any]:
    """A conversation's message as OpenAI's chat takes it (tool calls, and tool results by call id)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def tool_fields(req: TaskRequest) -> dict[str, Any]:
    """The tools, tool choice and parallel-call switch of a request, in OpenAI's shape (Ollama takes the same
    tools)."""
    fields: dict[str, Any] = {}
    if req.tools:
        fields["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in req.tools
        ]
    if req.tool_choice is not None:
        fields["tool_choice"] = req.tool_choice
    if req.parallel_tool_calls is not None:
        fields["parallel_tool_calls"] = req.parallel_tool_calls
    return fields


def response_format(req: TaskRequest) -> dict[str, Any]:
    """OpenAI's ``response_format``: JSON mode, or a strict JSON schema."""
    wanted = req.response_format
    if wanted is None or wanted.json_schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": wanted.name, "schema": wanted.json_schema, "strict": True}}


def _logprobs(entry: Any) -> dict[int, float]:
    """Chat: ``{"content": [{"logprob": …}]}``; completions: ``{"token_logprobs": […]}``."""
    if not isinstance(entry, dict):
        return {}
    values = entry.get("content")
    if isinstance(values, list):
        values = [v.get("logprob") if isinstance(v, dict) else None for v in values]
    else:
        values = entry.get("token_logprobs")
    if not isinstance(values, list):
        return {}
    return {n: float(v) for n, v in enumerate(values) if isinstance(v, int | float)}


class OpenAIAdapter(HttpAdapter):
    """OpenAI API: ``/v1/chat/completions`` for messages, ``/v1/completions`` for a prompt.

    Subclasses (vLLM, llama-swap) change the endpoints around generation and
    the extra request fields, never the chunk reading.
    """

    engine = "openai"
    capabilities = Capability.parse(
        "streaming, end_marker, seed, usage, health, chat, completions, non_streaming, logprobs, "
        "engine_version, openai_compat, sampling, named_models, stop, json_schema, json_object, tools, tool_choice"
    )
    api_prefix: ClassVar[str] = "/v1"
    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    """Chat's token budget field: current OpenAI models refuse the legacy ``max_tokens``."""
    chat_only: ClassVar[bool] = False
    """Send a prompt as one user message to chat (engines whose users only route chat)."""

    def __init__(self, base_url: str, options: AdapterOptions | None = None) -> None:
        super().__init__(api_root(base_url), options)
        self._fingerprint: str | None = None

    # -- requests ---------------------------------------------------------------------------------

    def uses_chat(self, req: TaskRequest) -> bool:
        """Chat for messages, and for tools and structured output, which only chat takes."""
        return req.messages is not None or self.chat_only or bool(req.tools) or req.response_format is not None

    def route(self, req: TaskRequest) -> str:
        return self.api_prefix + ("/chat/completions" if self.uses_chat(req) else "/completions")

    def extra_fields(self, req: TaskRequest) -> dict[str, Any]:
        """Engine extensions to the request body (vLLM's top_k, token ids); none for OpenAI itself."""
        return {}

    def request_body(self, req: TaskRequest, model: str, *, stream: bool) -> dict[str, Any]:
        chat = self.uses_chat(req)
        body: dict[str, Any] = {"model": model, "stream": stream, "temperature": req.temperature, "top_p": req.top_p}
        if chat:
            messages = req.messages or ()
            body["messages"] = [chat_message(m) for m in messages] or [{"role": "user", "content": req.prompt}]
            body[self.max_tokens_field] = req.max_tokens
        else:
            body["prompt"] = req.prompt
            body["max_tokens"] = req.max_tokens
        if stream:
            body["stream_options"] = {"include_usage": True}
        if req.seed is not None:
            body["seed"] = req.seed
        if req.stop:
            body["stop"] = list(req.stop)
        if req.logprobs:
            body.update({"logprobs": True, "top_logprobs": 1} if chat else {"logprobs": 1})
        body.update(tool_fields(req))
        if req.response_format is not None:
            body["response_format"] = response_format(req)
        body.update(self.extra_fields(req))
        return body

    # -- the WorkerAdapter protocol ----------------------------------------------------------------

    async def health(self) -> Health:
        return await self.probe_health(self.models_path, lambda body: isinstance(body, dict))

    async def engine_version(self) -> EngineVersion:
        """OpenAI has no version endpoint: the ``system_fingerprint`` of a one-token request names the backend."""
        model = await self.default_model()
        if self._fingerprint is None:
            probe = TaskRequest(
                messages=(ChatMessage(role="user", content="Say OK."),), max_tokens=1, seed=0, model=model
            )
            async for event in self.submit(probe):
                if isinstance(event, End):
                    self._fingerprint = event.raw.get("system_fingerprint")  # asked once per adapter
        return EngineVersion(version=self._fingerprint, model=model)

    async def whole(self, req: TaskRequest) -> Whole:
        body = self.request_body(req, await self.model_for(req), stream=False)
        return Whole(self.route(req), body, _choice_answer)

    async def generation(self, req: TaskRequest) -> Generation:
        body = self.request_body(req, await self.model_for(req), stream=True)
        path = self.route(req)
        return Generation(path, body, OpenAIStream(self, self.base_url + path))


ENGINE = EngineDescriptor(
    name="openai",
    adapter=OpenAIAdapter,
    speaks="`/v1/chat/completions` (messages), `/v1/completions` (prompt), `/v1/models`",
    notes="`--url` with or without `/v1`; any OpenAI-compatible server",
    stub=stub_app,
    rank=4,
)
"""The ``conform.engines`` entry point of this engine."""
