"""What a stub actually did, token by token: the ground truth a latency measurement is checked against.

A scripted delay says when a token is due; on a busy or shared machine the stub
writes it a little later. `conform stub --timeline FILE` records when each
token frame was handed to the connection, on the machine's monotonic clock
(`time.monotonic`, Linux's CLOCK_MONOTONIC, the clock the harness stamps its
tokens with), so a client on the same machine can tell its own timing error
from the stub's lateness.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ._engine import StubState

__all__ = ["Timeline", "TimelineError", "TimelineGeneration", "load_timeline", "timeline_of"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimelineGeneration(_Frozen):
    number: int
    """1 for the stub's first generation request, in arrival order."""
    prompt: str
    started_at: float
    """When generation began: the arrival of the request's first bytes, as the kernel stamped them on Linux
    (or the end of a batch window)."""
    written_at: list[float]
    """When each token frame was written. An unpaced script (no `token_delay_ms`) gathers frames into
    large writes: then this is when each frame was made, and its bytes may leave a little later."""


class Timeline(_Frozen):
    clock: Literal["monotonic"] = "monotonic"
    engine: str
    generations: list[TimelineGeneration]


class TimelineError(ValueError):
    """A timeline file that cannot be read or is not a timeline."""


def timeline_of(engine: str, state: StubState) -> Timeline:
    """The timeline of every generation a stub that keeps one has served so far."""
    return Timeline(
        engine=engine,
        generations=[
            TimelineGeneration(
                number=g.number, prompt=g.prompt, started_at=g.started_at, written_at=list(g.written_at or ())
            )
            for g in state.generations
        ],
    )


def load_timeline(path: Path) -> Timeline:
    try:
        return Timeline.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error).splitlines()[0]
        raise TimelineError(f"{path}: not a stub timeline ({reason})") from None
