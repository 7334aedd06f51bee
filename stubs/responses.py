"""OpenAI's Responses API wire format (docs/wires.md §11): ``POST /v1/responses`` with named, numbered events.

Every event's ``event:`` line equals its JSON ``type`` and carries a
``sequence_number`` that counts from 0 without a gap. A text answer streams
``response.created``, ``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, a ``response.output_text.delta`` per token,
then ``response.output_text.done``, ``response.content_part.done``,
``response.output_item.done`` and the terminal event: ``response.completed``,
or ``response.incomplete`` (``incomplete_details.reason: "max_output_tokens"``)
when the budget ran out. Errors use OpenAI's envelope; an error in a started
stream is ``event: error``. The openai SDK parses every event into its types.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

from aiohttp import web

from ._engine import (
    StreamPlan,
    StubContext,
    answer_whole,
    dumps,
    encode_sse,
    generation_route,
    play_stream,
    prompt_tokens,
    record_request,
)
from .openai import OPENAI, create_app_for, openai_error
from .script import ErrorInStreamFault, Framing, ResponsesViolationFault
from .tokens import StubToken

__all__ = ["create_app", "responses_route"]


class ResponsesWire:
    """The events of one response, numbered in the order the stream sends them."""

    content_type = "text/event-stream"

    def __init__(
        self, framing: Framing, number: int, model: str, created: int, *, numbered: bool = True, error_after: int = 0
    ) -> None:
        self._framing = framing
        self._numbered = numbered
        self.id = f"resp_conform{number}"
        self.item_id = f"msg_conform{number}"
        self._model = model
        self._created = created
        self._numbers = itertools.count()
        self._error_number = _LEAD_EVENTS + error_after
        """The number of an error event that breaks in after `error_after` deltas (error_in_stream)."""

    def event(self, payload: dict[str, Any], sequence_number: int | None = None) -> bytes:
        number = next(self._numbers) if sequence_number is None else sequence_number
        numbered = {**payload, "sequence_number": number} if self._numbered else payload
        return encode_sse(dumps(numbered), self._framing, event=payload["type"])

    def response(self, status: str, text: str | None, usage: dict[str, Any] | None) -> dict[str, Any]:
        """The response object: in progress (no output yet), or finished with its text and usage."""
        output = [] if text is None else [self.message(text, _item_status(status))]
        return {
            "id": self.id,
            "object": "response",
            "created_at": self._created,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": None,
            "model": self._model,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }

    def message(self, text: str | None, status: str) -> dict[str, Any]:
        content = [] if text is None else [_text_part(text)]
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def lead(self) -> bytes:
        """The four events before the first delta; they take sequence numbers 0 to 3."""
        return b"".join(
            (
                self.event({"type": "response.created", "response": self.response("in_progress", None, None)}),
                self.event({"type": "response.in_progress", "response": self.response("in_progress", None, None)}),
                self.event(
                    {"type": "response.output_item.added", "output_index": 0, "item": self.message(None, "in_progress")}
                ),
                self.event(
                    {
                        "type": "response.content_part.added",
                        "item_id": self.item_id,
                        "output_index": 0,
                        "content_index": 0,
                        "part": _text_part(""),
                    }
                ),
            )
        )

    def token_frame(self, token: StubToken, k: int) -> bytes:
        """Token `k`'s delta; its number follows the lead's four, whatever order the frames are written in."""
        delta = {
            "type": "response.output_text.delta",
            "item_id": self.item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": token.text,
            "logprobs": [],
        }
        return self.event(delta, sequence_number=_LEAD_EVENTS + k)

    def final(self, text: str, status: str, usage: dict[str, Any], deltas: int) -> list[bytes]:
        """The events after the last of `deltas` deltas, numbered on from it."""
        self._numbers = itertools.count(_LEAD_EVENTS + deltas)
        place = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        terminal = "response.completed" if status == "completed" else f"response.{status}"
        return [
            self.event({"type": "response.output_text.done", **place, "text": text, "logprobs": []}),
            self.event({"type": "response.content_part.done", **place, "part": _text_part(text)}),
            self.event(
                {
                    "type": "response.output_item.done",
                    "output_index": 0,
                    "item": self.message(text, _item_status(status)),
                }
            ),
            self.event({"type": terminal, "response": self.response(status, text, usage)}),
        ]

    def error_response(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return web.json_response(openai_error(status, message), status=status, headers=headers)

    def error_frame(self, message: str) -> bytes:
        error = {"type": "error", "code": "server_error", "message": message, "param": None}
        return self.event(error, sequence_number=self._error_number)

    def legacy_error_frame(self, message: str) -> bytes:
        return f"error: {dumps(openai_error(500, message))}\n\n".encode()

    def malformed_frame(self) -> bytes:
        return encode_sse(
            '{"type":"response.output_text.delta","item_id":"msg","delta":" bro',
            self._framing,
            "response.output_text.delta",
        )


_LEAD_EVENTS = 4


def _item_status(status: str) -> str:
    """An output message's status in a response of `status`: a response cut at its budget cut its message."""
    return "completed" if status == "completed" else "incomplete"


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class _Request(NamedTuple):
    model: str
    prompt: str
    max_tokens: int | None
    stream: bool


class _Refusal(NamedTuple):
    status: int
    message: str


def _parse(body: Any) -> _Request | _Refusal:
    """The request's fields, or the refusal the API would answer."""
    if not isinstance(body, dict):
        return _Refusal(400, "the request body must be a JSON object")
    model, given, budget = body.get("model"), body.get("input"), body.get("max_output_tokens")
    if not isinstance(model, str) or not model:
        return _Refusal(400, "Missing required parameter: 'model'.")
    if isinstance(given, str):
        prompt = given
    elif isinstance(given, list) and given and all(isinstance(m, dict) for m in given):
        prompt = "\n".join(str(m.get("content", "")) for m in given)
    else:
        return _Refusal(400, "Invalid 'input': expected a string or a non-empty array of input items.")
    if isinstance(body.get("instructions"), str):
        prompt = body["instructions"] + "\n" + prompt
    if budget is not None and (type(budget) is not int or budget < 1):
        # OpenAI's own API asks for at least 16; servers that speak the wire (vLLM, llama.cpp) take any.
        return _Refusal(400, f"Invalid 'max_output_tokens': expected a positive integer, got {budget!r}.")
    return _Request(model, prompt, budget, body.get("stream") is True)


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


async def _responses(request: web.Request, context: StubContext) -> web.StreamResponse:
    body = await record_request(request)
    if context.script.health == "loading":
        return web.json_response(openai_error(503, "Loading model"), status=503)
    parsed = _parse(body)
    if isinstance(parsed, _Refusal):
        return web.json_response(openai_error(parsed.status, parsed.message), status=parsed.status)
    if not context.serves(parsed.model):
        return web.json_response(openai_error(404, f"The model `{parsed.model}` does not exist."), status=404)
    if prompt_tokens(parsed.prompt) > context.ctx_size:
        message = f"Your input exceeds the context window of this model ({context.ctx_size} tokens)."
        return web.json_response(openai_error(400, message), status=400)
    generation, tokens = await context.new_generation(request, parsed.prompt, None, parsed.max_tokens)
    faults = context.faults_for(generation)
    broken = {f.violation for f in faults if isinstance(f, ResponsesViolationFault)}
    cut = bool(tokens) and len(tokens) == generation.max_tokens and not generation.stop_word
    status = "incomplete" if cut and "completed_at_budget" not in broken else "completed"
    text = "".join(t.text for t in tokens)
    usage = _usage(context.reported_prompt_tokens(parsed.prompt), len(tokens))
    wire = ResponsesWire(
        context.script.framing,
        generation.number,
        parsed.model,
        int(context.started),
        numbered="unnumbered" not in broken,
        error_after=min([f.at_token for f in faults if isinstance(f, ErrorInStreamFault)] + [len(tokens)]),
    )
    if not parsed.stream:
        return await answer_whole(request, context, generation, wire, wire.response(status, text, usage))
    lead = wire.lead()
    final = wire.final(text, status, usage, len(tokens))
    plan = StreamPlan(tokens, wire.token_frame, [b"" if tokens else lead, *final], lead=lead)
    return await play_stream(request, context, generation, plan, wire)


responses_route = generation_route(_responses)
"""The /v1/responses handler, for a server that speaks this wire besides its own (llama.cpp)."""


def create_app(context: StubContext) -> web.Application:
    """OpenAI's server: the Responses route beside chat, completions and the model list."""
    app = create_app_for(context, OPENAI)
    app.router.add_post("/v1/responses", responses_route)
    return app
