"""Seeded requests: the JSONL corpus format, its loader, and the built-in corpus.

One request per line; unknown keys are an error that names the line and key;
exactly one of ``prompt`` or ``messages``; ``id`` and ``seed`` required.
Sampler fields are optional with determinism-friendly defaults (temperature 0,
top_p 1).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from conform.adapters import ChatMessage, TaskRequest

__all__ = ["BUILTIN", "CorpusError", "CorpusRequest", "builtin_corpus", "load_corpus", "read_jsonl"]


class CorpusError(ValueError):
    """A corpus that cannot be used; the message names file, line and field."""


class CorpusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    prompt: str | None = None
    messages: tuple[ChatMessage, ...] | None = None
    seed: int
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_input(self) -> CorpusRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("exactly one of prompt or messages is required")
        return self

    def task(self, *, default_max_tokens: int, model: str | None, logprobs: bool = False) -> TaskRequest:
        """The request to send: prompt cache off (the cache mode turns it on itself)."""
        return TaskRequest(
            prompt=self.prompt,
            messages=self.messages,
            model=model,
            max_tokens=self.max_tokens or default_max_tokens,
            seed=self.seed,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            stop=self.stop,
            cache_prompt=False,
            logprobs=logprobs,
        )


Record = TypeVar("Record", bound=BaseModel)


def read_jsonl(path: Path, model: type[Record], what: str) -> list[tuple[int, Record]]:
    """(line number, record) for every non-blank line; any problem names file, line and field."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read {what}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: the {what} is not UTF-8 text") from None
    records: list[tuple[int, Record]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(data, dict):
            raise CorpusError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
        try:
            records.append((number, model.model_validate(data)))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p).encode("unicode_escape").decode() for p in first["loc"]) or "(line)"
            problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
            raise CorpusError(f"{path}:{number}: field {field}: {problem}") from None
    if not records:
        raise CorpusError(f"{path}: the {what} has no requests")
    return records


def load_corpus(path: Path) -> list[CorpusRequest]:
    requests: list[CorpusRequest] = []
    seen: dict[str, int] = {}
    for number, request in read_jsonl(path, CorpusRequest, "corpus"):
        if request.id in seen:
            raise CorpusError(f"{path}:{number}: id {request.id!r} repeats line {seen[request.id]}")
        seen[request.id] = number
        requests.append(request)
    return requests


def _greedy(id_: str, prompt: str) -> tuple[str, str, float]:
    return id_, prompt, 0.0


def _sampled(id_: str, prompt: str) -> tuple[str, str, float]:
    return id_, prompt, 0.9


BUILTIN: tuple[tuple[str, str, float], ...] = (
    _greedy("short-fact", "The capital of France is"),
    _sampled("short-story", "Once upon a time, in a village by the sea,"),
    _greedy("explain", "Explain how a bicycle stays upright while it is moving."),
    _sampled("poem", "Write a short poem about the first snow of winter."),
    _greedy("code-python", 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'),
    _greedy("code-sql", "-- Find the ten customers with the highest total order value\nSELECT"),
    _sampled("multilingual-fr", "Décris en quelques phrases une journée d'automne à Paris."),
    _greedy("multilingual-de", "Erkläre in einfachen Worten, wie ein Kühlschrank funktioniert."),
    _sampled("multilingual-ja", "春の京都について短い文章を書いてください。"),
    _greedy("repetition", "Repeat after me: one two three, one two three, one two three,"),
    _greedy("list", "List the planets of the solar system in order from the sun:\n1."),
    _sampled("dialogue", "A customer walks into a bakery and asks the baker"),
    _greedy(
        "long-context",
        "The following is a detailed account of the history of the lighthouse on the northern cape. "
        "It was built in 1854 from granite quarried on the island, and for over a century its keepers "
        "kept a log of every ship that passed, every storm, and every repair to the great lens. "
        "In 1923 the oil lamp was replaced by an electric one, and in 1967 the last keeper left. "
        "Summarise the most important events in this history:",
    ),
    _sampled("numbers", "Here is a sequence of random-looking numbers: 17, 42, 8, 91,"),
    _greedy("json", 'Return a JSON object describing a book with the keys "title", "author" and "year":\n'),
    _sampled("recipe", "A simple recipe for tomato soup. Ingredients:"),
)
"""(id, prompt, temperature): short, long, multilingual, code and repetition-prone; greedy and sampled."""


def builtin_corpus(count: int, seed: int) -> list[CorpusRequest]:
    """`count` requests from the built-in prompts; the same seed always selects the same requests.

    Past the number of built-in prompts, prompts come round again with other request seeds.
    """
    if count < 1:
        raise CorpusError(f"--requests must be at least 1, got {count}")
    rng = random.Random(seed)
    order = list(BUILTIN)
    rng.shuffle(order)
    requests = []
    for n in range(count):
        id_, prompt, temperature = order[n % len(order)]
        round_ = n // len(order)
        request_id = id_ if round_ == 0 else f"{id_}-{round_ + 1}"
        top_p = 0.95 if temperature > 0 else 1.0
        requests.append(
            CorpusRequest(
                id=request_id, prompt=prompt, seed=rng.randrange(1, 2**31), temperature=temperature, top_p=top_p
            )
        )
    return requests
