"""Requests an engine must refuse as a client's mistake, and the check that it did (``errors.*``).

Each request is the engine's own non-streamed generation request (``adapter.whole``), broken in one
way, sent once (no retry): the engine's answer is kept as a Refusal whatever it was, and the check
says what a vendor must change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from conform.adapters import ErrorKind, HttpAdapter, TaskRequest, WorkerError

from .checks import CheckFailure

__all__ = ["Refusal", "check_refused_as_invalid", "send_not_json", "send_wrong_type"]

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
