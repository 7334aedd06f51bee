"""One server, many wires (``equivalence.wires``): the same greedy request through each wire the server
speaks gives the same text."""

from __future__ import annotations

from dataclasses import dataclass

from conform.adapters import ChatMessage, HttpAdapter, TaskRequest

from .checks import CheckFailure, stream_completed
from .stream import StreamRecord, collect

__all__ = ["WireAnswer", "check_wires_agree", "through_each_wire"]

NO_PROMPT_CACHE = {"cache_prompt": False}
"""llama.cpp's own field, sent on its other wires too: a repeat that reused the prompt cache could continue
differently (what determinism reports), and that is not what this check is about."""


@dataclass(frozen=True, slots=True)
class WireAnswer:
    wire: str
    """How the request went: engine name and route kind, e.g. ``openai chat``."""
    stream: StreamRecord


async def through_each_wire(adapter: HttpAdapter, prompt: str, max_tokens: int) -> list[list[WireAnswer]]:
    """Groups of answers to compare: a prompt through the adapter's own wire and each other wire that takes a
    prompt, and one user message through each wire that takes messages. Greedy, without a seed (one wire has
    none) and without the prompt cache."""
    by_prompt = TaskRequest(prompt=prompt, max_tokens=max_tokens, cache_prompt=False)
    by_messages = TaskRequest(
        messages=(ChatMessage(role="user", content=prompt),), max_tokens=max_tokens, cache_prompt=False
    )
    prompts = [WireAnswer(f"{adapter.engine} prompt", await collect(adapter, by_prompt))]
    chats: list[WireAnswer] = []
    for engine in adapter.also_speaks:
        sibling = adapter.sibling(engine)
        sibling = sibling.replaced(request_extra={**NO_PROMPT_CACHE, **adapter.options.request_extra})
        try:
            if "completions" in sibling.capabilities:
                prompts.append(WireAnswer(f"{engine} prompt", await collect(sibling, by_prompt)))
            if "chat" in sibling.capabilities:
                chats.append(WireAnswer(f"{engine} chat", await collect(sibling, by_messages)))
        finally:
            await sibling.aclose()
    return [group for group in (prompts, chats) if len(group) > 1]


def check_wires_agree(groups: list[list[WireAnswer]]) -> None:
    """Within each group, every wire gave the same text."""
    if not groups:
        raise CheckFailure("no two wires to compare", "the server named other wires, but none took the request")
    for group in groups:
        for answer in group:
            stream_completed(answer.stream)
        first = group[0]
        for other in group[1:]:
            a, b = first.stream.text, other.stream.text
            if a != b:
                at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
                raise CheckFailure(
                    "two wires answer the same request differently",
                    f"{first.wire} and {other.wire} differ at character {at}: {a[at : at + 30]!r} against "
                    f"{b[at : at + 30]!r}; one model, greedy, must give one text whatever the wire",
                )
