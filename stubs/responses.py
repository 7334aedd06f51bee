"""OpenAI's Responses API wire format (docs/wires.md §6.4): ``POST /v1/responses`` with named, numbered events.

Every event's ``event:`` line equals its JSON ``type`` and carries a
``sequence_number`` that counts from 0 without a gap. A text answer streams
``response.created``, ``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, a ``response.output_text.delta`` per token,
then ``response.output_text.done``, ``response.content_part.done``,
``response.output_item.done`` and the terminal event: ``response.completed``,
or ``response.incomplete`` (``incomplete_details.reason: "max_output_tokens"``)
when the budget ran out. A tool call is an output item of its own
(``function_call``: added, its arguments in ``response.function_call_arguments.delta``
pieces, their whole in ``.done``, the item done); tools are declared flat
(``{"type": "function", "name", "parameters"}``), a tool's result comes back as a
``function_call_output`` input item, and structured output is asked for in
``text.format``. Errors use OpenAI's envelope; an error in a started stream is
``event: error``. The openai SDK parses every event into its types.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

from aiohttp import web

from ._engine import (
    Refusal,
    StreamPlan,
    StubContext,
    answer_whole,
    dumps,
    encode_sse,
    generation_route,
    message_text,
    play_stream,
    prompt_tokens,
    record_request,
)
from .openai import OPENAI, create_app_for, openai_error
from .script import ErrorInStreamFault, Fault, Framing, ResponsesViolationFault
from .structured import StubCall, planned_calls, streamed_pieces, tool_ask_responses, violations
from .tokens import StubToken

__all__ = ["create_app", "responses_route"]


class ResponsesWire:
    """The events of one response, numbered in the order the stream sends them."""

    content_type = "text/event-stream"

    def __init__(
        self,
        framing: Framing,
        number: int,
        model: str,
        created: int,
        *,
        numbered: bool = True,
        placed: bool = True,
        error_after: int = 0,
    ) -> None:
        self._framing = framing
        self._numbered = numbered
        self._placed = placed
        self._number = number
        self.id = f"resp_conform{number}"
        self.item_id = f"msg_conform{number}"
        self._model = model
        self._created = created
        self._numbers = itertools.count()
        self._error_number = _LEAD_EVENTS + error_after
        """The number of an error event that breaks in after `error_after` deltas (error_in_stream)."""

    def event(self, payload: dict[str, Any], sequence_number: int | None = None) -> bytes:
        number = next(self._numbers) if sequence_number is None else sequence_number
        sent = {**payload, "sequence_number": number} if self._numbered else payload
        if not self._placed:
            sent = {key: value for key, value in sent.items() if key not in ("output_index", "content_index")}
        return encode_sse(dumps(sent), self._framing, event=payload["type"])

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
        """The response object: in progress (no output yet), or finished with its output items and usage."""
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
        """The output item of a text answer."""
        content = [] if text is None else [_text_part(text)]
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def call_item(self, call: StubCall, k: int, arguments: str, status: str) -> dict[str, Any]:
        """The output item of call `k`, with these arguments."""
        return {
            "id": f"fc_conform{self._number}_{k}",
            "type": "function_call",
            "status": status,
            "call_id": call.id,
            "name": call.name,
            "arguments": arguments,
        }

    def opening(self) -> bytes:
        """The events every stream begins with: the response created, then in progress."""
        in_progress = self.response("in_progress", [], None)
        return self.event({"type": "response.created", "response": in_progress}) + self.event(
            {"type": "response.in_progress", "response": in_progress}
        )

    def text_lead(self) -> bytes:
        """The message item and its text part, added before the first delta."""
        added = {"type": "response.output_item.added", "output_index": 0, "item": self.message(None, "in_progress")}
        part = {**_TEXT_PLACE, "type": "response.content_part.added", "item_id": self.item_id, "part": _text_part("")}
        return self.event(added) + self.event(part)

    def token_frame(self, token: StubToken, k: int) -> bytes:
        """Token `k`'s delta; its number follows the four before it, whatever order the frames are written in."""
        delta = {
            **_TEXT_PLACE,
            "type": "response.output_text.delta",
            "item_id": self.item_id,
            "delta": token.text,
            "logprobs": [],
        }
        return self.event(delta, sequence_number=_LEAD_EVENTS + k)

    def text_close(self, text: str, status: str, deltas: int) -> list[bytes]:
        """The events that close the message after its last of `deltas` deltas, numbered on from it."""
        self._numbers = itertools.count(_LEAD_EVENTS + deltas)
        place = {**_TEXT_PLACE, "item_id": self.item_id}
        done = {"type": "response.output_item.done", "output_index": 0, "item": self.message(text, status)}
        return [
            self.event({"type": "response.output_text.done", **place, "text": text, "logprobs": []}),
            self.event({"type": "response.content_part.done", **place, "part": _text_part(text)}),
            self.event(done),
        ]

    def call_events(self, calls: list[StubCall], faults: list[Fault]) -> tuple[list[bytes], list[dict[str, Any]]]:
        """Each call as an output item of its own: added with empty arguments, its arguments in pieces, their
        whole, the item done; and the items done, for the response's output."""
        events, items = [], []
        for k, call in enumerate(calls):
            pieces = streamed_pieces(call, faults)
            added = self.call_item(call, k, "", "in_progress")
            place = {"item_id": added["id"], "output_index": k}
            events.append(self.event({"type": "response.output_item.added", "output_index": k, "item": added}))
            events += [
                self.event({"type": "response.function_call_arguments.delta", **place, "delta": p}) for p in pieces
            ]
            whole = "".join(pieces)
            events.append(self.event({"type": "response.function_call_arguments.done", **place, "arguments": whole}))
            done = self.call_item(call, k, whole, "completed")
            events.append(self.event({"type": "response.output_item.done", "output_index": k, "item": done}))
            items.append(done)
        return events, items

    def terminal(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any]) -> bytes:
        """The last event: response.completed, or response.incomplete."""
        return self.event({"type": f"response.{status}", "response": self.response(status, output, usage)})

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
"""Events before a text answer's first delta: created, in progress, the message item, its text part."""

_TEXT_PLACE = {"output_index": 0, "content_index": 0}
"""Where a text answer's events point: its message is the first output item, its text the first part."""


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class _Request(NamedTuple):
    model: str
    prompt: str
    max_tokens: int | None
    stream: bool


def _parse(body: Any) -> _Request | Refusal:
    """The request's fields, or the refusal the API would answer."""
    if not isinstance(body, dict):
        return Refusal(400, "the request body must be a JSON object")
    model, given, budget = body.get("model"), body.get("input"), body.get("max_output_tokens")
    if not isinstance(model, str) or not model:
        return Refusal(400, "Missing required parameter: 'model'.")
    if isinstance(given, str):
        prompt = given
    elif isinstance(given, list) and given and all(isinstance(m, dict) for m in given):
        prompt = message_text(given)
    else:
        return Refusal(400, "Invalid 'input': expected a string or a non-empty array of input items.")
    if isinstance(body.get("instructions"), str):
        prompt = body["instructions"] + "\n" + prompt
    if budget is not None and (type(budget) is not int or budget < 1):
        # OpenAI's own API asks for at least 16; servers that speak the wire (vLLM, llama.cpp) take any.
        return Refusal(400, f"Invalid 'max_output_tokens': expected a positive integer, got {budget!r}.")
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
    if isinstance(parsed, Refusal):
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
    ask = tool_ask_responses(body)
    calls = planned_calls(ask, faults, generation.number)
    if calls:
        tokens, status = [], "incomplete" if "wrong_finish" in violations(faults) else "completed"
    elif ask.after_result and "empty_after_result" in violations(faults):
        tokens = []
    text = "".join(t.text for t in tokens)
    usage = _usage(context.reported_prompt_tokens(parsed.prompt), len(tokens))
    wire = ResponsesWire(
        context.script.framing,
        generation.number,
        parsed.model,
        int(context.started),
        numbered="unnumbered" not in broken,
        placed="unplaced" not in broken,
        error_after=min([f.at_token for f in faults if isinstance(f, ErrorInStreamFault)] + [len(tokens)]),
    )
    item_status = "completed" if status == "completed" or calls else "incomplete"
    if not parsed.stream:
        whole = [wire.call_item(c, k, c.arguments, "completed") for k, c in enumerate(calls)]
        output = whole or [wire.message(text, item_status)]
        return await answer_whole(request, context, generation, wire, wire.response(status, output, usage))
    opening = wire.opening()
    if calls:
        streamed, output = wire.call_events(calls, faults)
        final = [opening, *streamed, wire.terminal(status, output, usage)]
        return await play_stream(request, context, generation, StreamPlan([], wire.token_frame, final), wire)
    lead = opening + wire.text_lead()
    closing = wire.text_close(text, item_status, len(tokens))
    final = [b"" if tokens else lead, *closing, wire.terminal(status, [wire.message(text, item_status)], usage)]
    plan = StreamPlan(tokens, wire.token_frame, final, lead=lead)
    return await play_stream(request, context, generation, plan, wire)


responses_route = generation_route(_responses)
"""The /v1/responses handler, for a server that speaks this wire besides its own (llama.cpp)."""


def create_app(context: StubContext) -> web.Application:
    """OpenAI's server: the Responses route beside chat, completions and the model list."""
    app = create_app_for(context, OPENAI)
    app.router.add_post("/v1/responses", responses_route)
    return app
