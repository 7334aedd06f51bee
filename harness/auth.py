"""Whether an engine started with an API key refuses requests without it (``auth.required``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from conform.adapters import ErrorKind, Health, HttpAdapter, TaskRequest

from .checks import CheckFailure, stream_completed
from .stream import StreamRecord, collect

__all__ = ["AuthAnswers", "auth_answers", "check_auth_required"]

WRONG_KEY = "sk-conform-wrong-key-0000"
"""A key no engine was given."""


@dataclass(frozen=True, slots=True)
class AuthAnswers:
    without_key: StreamRecord
    wrong_key: StreamRecord
    right_key: StreamRecord
    health_without_key: Health | None
    """What health said to a request without the key, where the engine documents health as public."""


async def auth_answers(adapter: HttpAdapter, request: TaskRequest) -> AuthAnswers:
    """The same request without a key, with a wrong one and with the right one (the adapter's own)."""

    async def once(key: str | None, *, ask_health: bool) -> tuple[StreamRecord, Health | None]:
        other = adapter.with_api_key(key)
        try:
            record = await collect(other, request.model_copy(update={"task_id": uuid.uuid4().hex}))
            return record, await other.health() if ask_health else None
        finally:
            await other.aclose()

    without_key, health = await once(None, ask_health=adapter.public_health)
    wrong_key, _ = await once(WRONG_KEY, ask_health=False)
    right = await collect(adapter, request.model_copy(update={"task_id": uuid.uuid4().hex}))
    return AuthAnswers(without_key, wrong_key, right, health)


def check_auth_required(answers: AuthAnswers) -> None:
    """No key: 401. A wrong key: 401 or 403. Never a 5xx, never served. The right key: served. A health
    endpoint the engine documents as public answers ready without a key."""
    for what, record in (("without a key", answers.without_key), ("with a wrong key", answers.wrong_key)):
        error = record.error
        if error is None:
            raise CheckFailure(
                "served without the right key",
                f"a request {what} was served ({len(record.tokens)} tokens): an engine started with an API key "
                "must refuse it with 401",
            )
        allowed = (401,) if what == "without a key" else (401, 403)
        if error.status not in allowed or error.kind is not ErrorKind.AUTH:
            raise CheckFailure(
                "refused with the wrong status",
                f"a request {what} was answered {error.status} ({error.kind.value}): {error.message}; expected "
                f"{' or '.join(map(str, allowed))}",
            )
    try:
        stream_completed(answers.right_key)
    except CheckFailure as failure:
        raise CheckFailure("the right key was refused", f"a request with the right key: {failure.detail}") from None
    health = answers.health_without_key
    if health is not None and not health.ready:
        raise CheckFailure(
            "public health needs a key",
            f"health without a key answered {health.status}: {health.detail[:80]}; the engine documents health "
            "as public (load balancers ask it without credentials)",
        )
