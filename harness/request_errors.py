"""Requests an engine must refuse as a client's mistake, and the check that it did (``errors.*``).

Each request is the engine's own non-streamed generation request (``adapter.whole``), broken in one
way, sent once (no retry): the engine's answer is kept as a Refusal whatever it was, and the check
says what a vendor must change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from conform.adapters import ErrorKind, HttpAdapter, TaskRequest, WorkerError, field_text

from .checks import CheckFailure

__all__ = [
    "UNKNOWN_MODEL",
    "Refusal",
    "check_refused_as_invalid",
    "check_unknown_model",
    "send_not_json",
    "send_unknown_model",
    "send_wrong_type",
]

NOT_JSON = b'{"prompt": "Say hello", "max_tokens": 8'
"""A body cut off before its closing brace: not JSON."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """How the engine answered: its status, the error kind conform gives that answer (None: it was served,
    or nothing answered), and its message."""

    status: int | None
    kind: ErrorKind | None
    message: str


async def _answer(adapter: HttpAdapter, path: str, *, body: Any = None, raw: bytes | None = None) -> Refusal:
    try:
        reply = await adapter.http.request("POST", path, json_body=body, body=raw, retry=False)
    except WorkerError as error:
        return Refusal(error.status, error.kind, error.message)
    return Refusal(reply.status, None, reply.body[:200].decode("utf-8", "replace"))


async def send_not_json(adapter: HttpAdapter, request: TaskRequest) -> Refusal:
    """The engine's generation request with a body that is not JSON."""
    whole = await adapter.whole(request)
    return await _answer(adapter, whole.path, raw=NOT_JSON)


async def send_wrong_type(adapter: HttpAdapter, request: TaskRequest, value: Any = "ten") -> tuple[Refusal, str]:
    """The engine's generation request with its token budget set to `value` (a string where a number
    belongs); returns the answer and the parameter's name on this wire."""
    whole = await adapter.whole(request)
    body = copy.deepcopy(whole.body)
    *parents, name = adapter.budget_key
    holder = body
    for key in parents:
        holder = holder[key]
    holder[name] = value
    return await _answer(adapter, whole.path, body=body), name


UNKNOWN_MODEL = "conform-no-such-model"
"""A model no engine serves."""


async def send_unknown_model(adapter: HttpAdapter, request: TaskRequest) -> tuple[Refusal, str | None]:
    """The engine's generation request for UNKNOWN_MODEL; the answer, and the model a served answer names."""
    whole = await adapter.whole(request.model_copy(update={"model": UNKNOWN_MODEL}))
    try:
        reply = await adapter.http.request("POST", whole.path, json_body=whole.body, retry=False)
    except WorkerError as error:
        return Refusal(error.status, error.kind, error.message), None
    answer = Refusal(reply.status, None, reply.body[:200].decode("utf-8", "replace"))
    return answer, field_text(reply.json_or_text(), "model")


def check_unknown_model(answer: Refusal, answered_by: str | None) -> None:
    """A request for a model the engine does not serve is refused (404 or 400, never a 5xx), or served by the
    engine's own model with an answer that names it; never served in the unknown model's name."""
    if answer.kind is None:
        if answered_by is None:
            raise CheckFailure(
                "an unknown model was served without saying by which",
                f"a request for model {UNKNOWN_MODEL!r} was served (HTTP {answer.status}) and the answer names no "
                "model: refuse it (404), or name the model that answered",
            )
        if answered_by == UNKNOWN_MODEL:
            raise CheckFailure(
                "an unknown model was served in its name",
                f"a request for model {UNKNOWN_MODEL!r}, which the engine does not serve, was answered in that "
                "model's name: another model answered it; refuse it (404) or name the model that answered",
            )
        return
    if answer.status is None or answer.status >= 500:
        raise CheckFailure(
            "a client's mistake answered as a server error",
            f"a request for model {UNKNOWN_MODEL!r} was answered {answer.status}: {answer.message}; an unknown "
            "model is the client's mistake: answer 404 (or 400) naming it",
        )
    if answer.kind not in (ErrorKind.NOT_FOUND, ErrorKind.INVALID_REQUEST):
        raise CheckFailure(
            "unknown model refused as something else",
            f"a request for model {UNKNOWN_MODEL!r} was answered {answer.status} ({answer.kind.value}): "
            f"{answer.message}; expected 404 or 400",
        )


def check_refused_as_invalid(answer: Refusal, what: str, parameter: str | None = None) -> None:
    """`what` (a request that is the client's mistake) was refused as one: a 4xx that conform classifies as
    invalid_request, never a 5xx nor served; with `parameter`, the message names it."""
    if answer.kind is None:
        served = f"HTTP {answer.status}" if answer.status is not None else "no answer"
        raise CheckFailure(
            "an invalid request was served",
            f"{what} was answered {served} ({answer.message[:80]!r}): it must be refused with a 400",
        )
    if answer.status is None or answer.status >= 500:
        raise CheckFailure(
            "a client's mistake answered as a server error",
            f"{what} was answered {answer.status}: {answer.message}; a malformed request is the client's mistake: "
            "answer 400 (or 422) saying what is wrong",
        )
    if answer.kind is not ErrorKind.INVALID_REQUEST:
        raise CheckFailure(
            "invalid request refused as something else",
            f"{what} was answered {answer.status} ({answer.kind.value}): {answer.message}; expected 400 or 422",
        )
    if parameter is not None and parameter not in answer.message:
        raise CheckFailure(
            "the refusal does not name the parameter",
            f"{what} was refused with {answer.status}, but the message does not name {parameter!r}: {answer.message}",
        )
