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
from typing import Any, Protocol, runtime_checkable

import msgspec
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ChatMessage",
    "End",
    "EngineVersion",
    "Health",
    "Metrics",
    "Props",
    "Started",
    "TaskRequest",
    "Token",
    "TokenEvent",
    "Usage",
    "WorkerAdapter",
    "frame_tokens",
]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: str
    content: str


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


@dataclass(slots=True, frozen=True)
class End:
    finish_reason: str
    usage: Usage | None
    at: float
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    """The engine's final frame, for checks that look at engine-specific fields."""


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
