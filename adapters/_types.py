"""The adapter interface: requests in, token events out.

A stream's grammar is ``Started Token* Metrics? End``, or a WorkerError raised
part-way. Events are slotted records (hot path: Token, made once per token, is a
msgspec struct); the request and the descriptive results are pydantic models
(boundaries).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Answer",
    "ChatMessage",
    "End",
    "EngineVersion",
    "Health",
    "Metrics",
    "Props",
    "ResponseFormat",
    "Started",
    "TaskRequest",
    "Token",
    "TokenEvent",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "WorkerAdapter",
    "frame_tokens",
]


class ToolCall(BaseModel):
    """One call of a declared tool, as an engine answered it: its arguments as the JSON text it sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str | None
    """The call's id, which a tool result names; None where the wire has no ids (Ollama)."""
    name: str
    arguments: str
    """The arguments as the engine wrote them (JSON text, streamed: its deltas joined), unparsed: a check
    must be able to see that they are not JSON."""


class ToolSpec(BaseModel):
    """A tool the request declares: a function the engine may call, with a JSON schema of its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ResponseFormat(BaseModel):
    """Structured output: any one JSON object (``json_object``), or JSON valid against `json_schema`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None
    name: str = "answer"
    """The schema's name, where the wire asks for one (OpenAI's ``json_schema.name``)."""

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is given exactly when type is json_schema")
        return self


class ChatMessage(BaseModel):
    """A message of a conversation: text, an assistant's tool calls, or a tool's result (``role="tool"``,
    naming the call it answers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    """The tool whose result this is (role ``tool``; wires without call ids match results by name)."""


class TaskRequest(BaseModel):
    """One generation request, engine-neutral. Defaults favour determinism."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    prompt: str | None = None
    messages: tuple[ChatMessage, ...] | None = None
    model: str | None = None
    max_tokens: int = Field(default=16, ge=0)
    seed: int | None = None
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stop: tuple[str, ...] = ()
    cache_prompt: bool | None = None
    """Ask the engine to reuse (True) or not reuse (False) its prompt cache; None leaves its default."""
    logprobs: bool = False
    """Ask for the log-probability of each sampled token, where the engine offers it."""
    top_logprobs: int = Field(default=0, ge=0, le=20)
    """With logprobs: how many of the most likely tokens to list at each position (engines that list them)."""
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: Literal["auto", "required", "none"] | None = None
    """Whether the engine may (auto), must (required) or must not (none) call a tool; None: the wire's default."""
    parallel_tool_calls: bool | None = None
    """Allow (True) or forbid (False) several calls in one answer; None: the wire's default."""
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _one_input(self) -> TaskRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("exactly one of prompt or messages is required")
        return self


@dataclass(slots=True, frozen=True)
class Started:
    """Response headers arrived with a success status: the stream has begun."""

    task_id: str
    at: float
    """Monotonic clock reading (seconds)."""
    sent_at: float | None = None
    """When the request went to the connection (monotonic seconds), where the adapter knows it:
    the moment time to first token counts from."""


class Token(msgspec.Struct, gc=False):
    """One generated token; treat it as immutable.

    A msgspec struct rather than a slotted dataclass: one is made per token, and a
    struct is built in C in half the time. It holds no container, so the garbage
    collector need not track it (``gc=False``): a stream's tokens, kept until its
    checks run, then never count towards a collection, nor make one longer.
    """

    index: int
    """Position of this token in the generated sequence, 0-based, as the engine states it."""
    text: str
    token_id: int | None
    at: float
    logprob: float | None = None
    """Log-probability of the sampled token, when requested and offered."""
    top: tuple[tuple[int | None, str, float], ...] = ()
    """The most likely tokens at this position as (id, text, log-probability), in the engine's order, when
    requested (top_logprobs) and listed."""


def frame_tokens(
    first: int,
    text: str,
    ids: list[int],
    at: float,
    logprobs: dict[int, float] | None = None,
    tops: dict[int, tuple[tuple[int | None, str, float], ...]] | None = None,
) -> list[Token]:
    """The tokens of one frame that carries `ids` and the text of all of them.

    Engines that batch several token ids into one frame send the text once: it
    rides on the last token, the others carry "". With no ids the frame is one token.
    """
    found, listed = logprobs or {}, tops or {}
    if not ids:
        return [Token(first, text, None, at, found.get(0), listed.get(0, ()))]
    last = len(ids) - 1
    return [
        Token(first + n, text if n == last else "", token_id, at, found.get(n), listed.get(n, ()))
        for n, token_id in enumerate(ids)
    ]


@dataclass(slots=True, frozen=True)
class Metrics:
    """Engine-reported timings, when the engine sends them."""

    values: dict[str, float]
    at: float


@dataclass(slots=True, frozen=True)
class Usage:
    prompt_tokens: int | None
    completion_tokens: int | None

    @classmethod
    def read(cls, prompt: Any, completion: Any) -> Usage:
        """The counts an engine's frame states, each kept where it is an integer (else unknown)."""
        return cls(prompt if isinstance(prompt, int) else None, completion if isinstance(completion, int) else None)


@dataclass(slots=True, frozen=True)
class End:
    finish_reason: str
    usage: Usage | None
    at: float
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    """The engine's final frame, for checks that look at engine-specific fields."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The tool calls the stream made, each assembled from its deltas in the order they began."""


@dataclass(slots=True, frozen=True)
class Answer:
    """A request answered whole (not streamed): its text, its tool calls and why it ended, where it says."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None


TokenEvent = Started | Token | Metrics | End


class Health(BaseModel):
    model_config = ConfigDict(frozen=True)
    ready: bool
    status: int | None = None
    detail: str = ""


class Props(BaseModel):
    model_config = ConfigDict(frozen=True)
    model: str | None = None
    ctx_max: int | None = None
    total_slots: int | None = None
    busy_slots: int | None = None
    """Slots generating right now, where the engine exposes it (None = unknown)."""
    slot_tasks: tuple[int, ...] | None = None
    """The engine's id of the task each slot runs, or ran last, where it names them (llama.cpp /slots id_task,
    which an idle slot keeps): a task that took a slot even briefly stays named here until another replaces it."""


class EngineVersion(BaseModel):
    model_config = ConfigDict(frozen=True)
    version: str | None = None
    model: str | None = None
    model_digest: str | None = None


@runtime_checkable
class WorkerAdapter(Protocol):
    """What every engine module implements."""

    engine: str

    async def health(self) -> Health: ...

    async def props(self) -> Props: ...

    async def engine_version(self) -> EngineVersion: ...

    def submit(self, req: TaskRequest) -> AsyncGenerator[TokenEvent, None]: ...

    async def cancel(self, task_id: str) -> None: ...

    async def aclose(self) -> None: ...
