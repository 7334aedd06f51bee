"""The checks of OpenAI's own wires: the rows community matrices track for OpenAI-compatible servers
(``openai.*``), and what the Responses API's event stream must hold (``responses.*``).

Stream checks read what the adapter kept of the wire in ``End.raw`` (see
adapters/_openai.py and adapters/responses.py); the error envelope and the
seed are judged from requests of their own.
"""

from __future__ import annotations

from typing import Any

from conform.adapters import ChatMessage, HttpAdapter, OpenAIAdapter, TaskRequest, WorkerError

from .checks import CheckFailure, check
from .stream import StreamRecord

__all__ = [
    "INVALID_CHAT_BODY",
    "check_error_envelope",
    "check_same_text",
    "openai_adapter",
    "seeded_chat",
]

INVALID_CHAT_BODY: dict[str, Any] = {"messages": "this should be an array of messages", "max_tokens": 4}
"""A chat request every OpenAI-compatible server must refuse with a 4xx."""


def openai_adapter(adapter: HttpAdapter) -> OpenAIAdapter:
    if not isinstance(adapter, OpenAIAdapter):
        raise CheckFailure("not an OpenAI-family target", f"{adapter.engine} does not speak the OpenAI API")
    return adapter


def _wire(record: StreamRecord) -> dict[str, Any]:
    if record.error is not None:
        raise CheckFailure("stream failed", str(record.error))
    if record.end is None:
        raise CheckFailure("stream did not end", "no end event was received")
    return record.end.raw


@check("openai.done_terminator")
def done_terminator(record: StreamRecord) -> None:
    """The stream ends with ``data: [DONE]``."""
    if not _wire(record).get("done_marker"):
        raise CheckFailure(
            "no [DONE] terminator", "the stream ended without a final `data: [DONE]` event; OpenAI clients expect it"
        )


@check("openai.finish_reason")
def finish_reason_on_last_choice(record: StreamRecord) -> None:
    """The last chunk with choices carries the finish_reason."""
    wire = _wire(record)
    if not wire.get("finish_on_last_chunk"):
        raise CheckFailure(
            "finish_reason not on the last choice",
            f"finish_reason {wire.get('finish_reason')!r} arrived on a chunk that was not the last with choices",
        )


@check("openai.include_usage")
def include_usage(record: StreamRecord) -> None:
    """With ``stream_options.include_usage``, a final chunk with empty ``choices`` carries the usage."""
    wire = _wire(record)
    if wire.get("usage") is None:
        raise CheckFailure("usage chunk missing", "stream_options.include_usage was sent, but no chunk carried usage")
    if not wire.get("usage_chunk"):
        raise CheckFailure(
            "usage not in a chunk of its own",
            "the usage arrived on a chunk with choices; OpenAI sends it on an extra last chunk with `choices: []`",
        )


@check("openai.usage_consistent")
def usage_consistent(record: StreamRecord) -> None:
    """usage.completion_tokens equals the tokens streamed, and total = prompt + completion."""
    usage = _wire(record).get("usage")
    if not isinstance(usage, dict):
        raise CheckFailure("usage missing", "no usage was reported, so it cannot be compared with the stream")
    streamed = len(record.tokens)
    completion, prompt, total = (usage.get(k) for k in ("completion_tokens", "prompt_tokens", "total_tokens"))
    if completion != streamed:
        raise CheckFailure(
            "usage does not match the stream", f"usage.completion_tokens is {completion!r}, {streamed} were streamed"
        )
    if isinstance(prompt, int) and isinstance(total, int) and total != prompt + completion:
        raise CheckFailure(
            "usage total inconsistent", f"total_tokens {total} != prompt {prompt} + completion {completion}"
        )


def check_same_text(first: StreamRecord, second: StreamRecord) -> None:
    """The same seeded request, sent twice, gave the same text."""
    for record in (first, second):
        if record.error is not None:
            raise CheckFailure("stream failed", str(record.error))
    if first.text != second.text:
        at = next((i for i, (a, b) in enumerate(zip(first.text, second.text, strict=False)) if a != b), None)
        at = min(len(first.text), len(second.text)) if at is None else at
        raise CheckFailure(
            "seed not honoured",
            f"two identical requests with seed {first.request.seed} differ at character {at}: "
            f"{first.text[at : at + 30]!r} vs {second.text[at : at + 30]!r}",
        )


async def check_error_envelope(adapter: OpenAIAdapter, model: str) -> dict[str, Any]:
    """An invalid chat request is refused with a 4xx whose body is ``{"error": {message, type, param, code}}``."""
    path = adapter.api_prefix + "/chat/completions"
    try:
        reply = await adapter.http.request(
            "POST",
            path,
            json_body={"model": model, **INVALID_CHAT_BODY},
            ok_statuses=frozenset(range(400, 600)),
            retry=False,
        )
    except WorkerError as error:
        raise CheckFailure(
            "invalid request not refused", f"the request failed without an HTTP answer: {error}"
        ) from None
    if not 400 <= reply.status < 500:
        raise CheckFailure("invalid request not refused with a 4xx", f"{path} answered {reply.status}")
    body = reply.json_or_text()
    envelope = body.get("error") if isinstance(body, dict) else None
    if not isinstance(envelope, dict):
        raise CheckFailure(
            "no OpenAI error envelope", f'the {reply.status} body is {str(body)[:160]!r}, expected {{"error": {{...}}}}'
        )
    if not isinstance(envelope.get("message"), str) or not isinstance(envelope.get("type"), str):
        raise CheckFailure("error envelope incomplete", f"error.message and error.type must be strings: {envelope}")
    missing = [key for key in ("param", "code") if key not in envelope]
    if missing:
        raise CheckFailure(
            "error envelope incomplete", f"error has no {' or '.join(missing)} key (null is fine): {envelope}"
        )
    return envelope


def seeded_chat(model: str | None, seed: int, max_tokens: int) -> TaskRequest:
    return TaskRequest(
        messages=(ChatMessage(role="user", content="Write one sentence about the sea."),),
        seed=seed,
        temperature=0.8,
        max_tokens=max_tokens,
        model=model,
    )


@check("responses.sequence_numbers")
def sequence_numbers(record: StreamRecord) -> None:
    """Every event of a Responses stream carries its ``sequence_number`` (the adapter refuses a number out of
    turn; one that is missing is judged here)."""
    wire = _wire(record)
    unnumbered = wire.get("unnumbered") or []
    if unnumbered:
        raise CheckFailure(
            "events without a sequence_number",
            f"{len(unnumbered)} of {wire.get('events')} events carry no sequence_number (the first a "
            f"{unnumbered[0]}): every Responses stream event must, counting from 0, and the openai SDK's event "
            "types require it",
        )


@check("responses.event_indices")
def event_indices(record: StreamRecord) -> None:
    """Every event of an output item says where it belongs: its ``output_index``, and for a part or a piece
    of text its ``content_index`` and ``item_id`` (clients index the response being built by them)."""
    unplaced = _wire(record).get("unplaced") or {}
    if unplaced:
        lacking = "; ".join(f"{kind} lacks {', '.join(names)}" for kind, names in unplaced.items())
        raise CheckFailure(
            "events that do not say where they belong",
            f"{lacking}: a client builds the response by these indices (the openai SDK's responses.stream() "
            "fails with 'list indices must be integers or slices, not NoneType')",
        )


@check("responses.incomplete_at_budget")
def incomplete_at_budget(record: StreamRecord) -> None:
    """A response cut at ``max_output_tokens`` ends with ``response.incomplete`` and the reason
    ``max_output_tokens``; one that stopped before its budget ends with ``response.completed``."""
    wire = _wire(record)
    usage = wire.get("usage")
    counted = usage.get("output_tokens") if isinstance(usage, dict) else None
    produced = counted if isinstance(counted, int) else len(record.tokens)
    budget = record.request.max_tokens
    terminal, details = wire.get("terminal"), wire.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    said = f"{terminal} (status {wire.get('status')!r}, incomplete_details {details!r})"
    if produced >= budget and (terminal != "response.incomplete" or reason != "max_output_tokens"):
        raise CheckFailure(
            "budget reached but the response says it is complete",
            f"all {budget} tokens of max_output_tokens {budget} were produced, but the stream ended with {said}; "
            "expected response.incomplete with incomplete_details.reason 'max_output_tokens'",
        )
    if produced < budget and terminal != "response.completed":
        raise CheckFailure(
            "incomplete before the budget",
            f"{produced} of max_output_tokens {budget} tokens were produced, and the stream ended with {said}; "
            "a response that stopped on its own is response.completed",
        )
