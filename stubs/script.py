"""What a stub engine does for each request: a pydantic Script, loadable from JSON.

A script sets the pace (per-token delay), the framing variant (line endings,
keep-alives, chunking) and a list of faults. Each fault is one entry of a
closed catalogue, tagged by ``kind``; ``times`` limits it to the first N
generation requests (for retry tests), otherwise it applies to all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Determinism", "Fault", "Framing", "Script", "ScriptError", "fault_kinds", "load_script"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FaultBase(_Strict):
    times: int | None = Field(default=None, ge=1, description="apply to the first N generation requests only")


class StatusFault(_FaultBase):
    """Answer the generation request with an HTTP error in the engine's own error body."""

    kind: Literal["status"]
    status: int = Field(ge=400, le=599)
    message: str = "scripted error"
    headers: dict[str, str] = Field(default_factory=dict)


class ErrorInStreamFault(_FaultBase):
    """After `at_token` tokens, send the engine's in-stream error frame and close."""

    kind: Literal["error_in_stream"]
    at_token: int = Field(default=2, ge=0)
    message: str = "scripted in-stream error"


class LegacyErrorLineFault(_FaultBase):
    """After `at_token` tokens, send an old-style ``error: {...}`` line (not an SSE field) and close."""

    kind: Literal["legacy_error_line"]
    at_token: int = Field(default=2, ge=0)
    message: str = "scripted legacy error"


class MissingFinalFault(_FaultBase):
    """Send every token, then close without the engine's final frame."""

    kind: Literal["missing_final"]


class CloseEarlyFault(_FaultBase):
    """Close the connection in the middle of token frame `at_token`."""

    kind: Literal["close_early"]
    at_token: int = Field(default=2, ge=0)


class DuplicateTokenFault(_FaultBase):
    """Send token frame `at_token` twice."""

    kind: Literal["duplicate_token"]
    at_token: int = Field(default=2, ge=0)


class ReorderTokensFault(_FaultBase):
    """Swap token frames `at_token` and `at_token + 1`."""

    kind: Literal["reorder_tokens"]
    at_token: int = Field(default=2, ge=0)


class SkipTokenFault(_FaultBase):
    """Leave token frame `at_token` out."""

    kind: Literal["skip_token"]
    at_token: int = Field(default=2, ge=0)


class MalformedJsonFault(_FaultBase):
    """Replace token frame `at_token` by a frame whose data is not JSON."""

    kind: Literal["malformed_json"]
    at_token: int = Field(default=2, ge=0)


class ContentTypeFault(_FaultBase):
    """Stream with this content type instead of the engine's own."""

    kind: Literal["content_type"]
    value: str = "application/json"


class StallFault(_FaultBase):
    """Stop sending, for `seconds` (default: an hour, i.e. forever for a test)."""

    kind: Literal["stall"]
    phase: Literal["before_headers", "after_headers", "mid_stream"] = "mid_stream"
    at_token: int = Field(default=2, ge=0)
    seconds: float = Field(default=3600.0, gt=0)


class OversizedFrameFault(_FaultBase):
    """Replace token frame `at_token` by one frame of `size` bytes (over the harness's limit by default)."""

    kind: Literal["oversized_frame"]
    at_token: int = Field(default=2, ge=0)
    size: int = Field(default=6 * 1024 * 1024, ge=1, le=64 * 1024 * 1024)


class NonUtf8Fault(_FaultBase):
    """Put bytes that are not UTF-8 into token frame `at_token`."""

    kind: Literal["non_utf8"]
    at_token: int = Field(default=2, ge=0)


class SlowLorisFault(_FaultBase):
    """After the headers, send the body one byte at a time, `bytes_per_second` bytes a second."""

    kind: Literal["slow_loris"]
    bytes_per_second: float = Field(default=1.0, gt=0)


class EndlessFault(_FaultBase):
    """Ignore the token budget: keep streaming tokens (up to 4,000) until the client leaves."""

    kind: Literal["endless"]


class OverrunFault(_FaultBase):
    """Stream `extra` tokens more than the request's budget, and still call the end ``length``: an off-by-one."""

    kind: Literal["overrun"]
    extra: int = Field(default=1, ge=1, le=1000)


class MisreportInvalidFault(_FaultBase):
    """Answer a request the stub refuses as invalid (400, 413, 422: a body that is not JSON, a parameter of
    a wrong type) with `status` and `message` instead: a 500 for a client's mistake, or a message that names
    nothing."""

    kind: Literal["misreport_invalid"]
    status: int = Field(default=500, ge=400, le=599)
    message: str = "Internal Server Error"


class MisreportUsageFault(_FaultBase):
    """Report `prompt_tokens` more prompt tokens in the usage than the stub's own tokenizer counts (a
    tokenizer endpoint and a usage that disagree: one of them lies)."""

    kind: Literal["misreport_usage"]
    prompt_tokens: int = Field(default=1, ge=-1000, le=1000)


class SplitCharactersFault(_FaultBase):
    """Stream each token that holds a character of several UTF-8 bytes as two tokens cut inside it, each
    decoded alone: U+FFFD in the stream (llama.cpp #4036, #4446)."""

    kind: Literal["split_characters"]


class ClaimAnyModelFault(_FaultBase):
    """Serve a request for any model, the stub's own answering in the requested model's name: an unknown
    model silently served by another."""

    kind: Literal["claim_any_model"]


class SlowUnderLoadFault(_FaultBase):
    """Answer every request that is not a generation (health, props, model lists) `delay_ms` late while a
    generation is in flight: a server whose request loop waits behind generation."""

    kind: Literal["slow_under_load"]
    delay_ms: float = Field(default=2500.0, gt=0)


class LeakStopFault(_FaultBase):
    """End a generation after its stop string instead of before it: the stop string leaks into the output."""

    kind: Literal["leak_stop"]


class StaleMetricsFault(_FaultBase):
    """Serve /metrics whose counters never rise, whatever was served."""

    kind: Literal["stale_metrics"]


class AcceptAnyKeyFault(_FaultBase):
    """With an api_key in the script, serve a request that carries any key at all, not only the right one."""

    kind: Literal["accept_any_key"]


class OverloadFault(_FaultBase):
    """A generation that arrives while every slot is busy is answered `status` (a 500 where a 429 or 503
    belongs), or, with no status, never answered at all (a server that hangs under load)."""

    kind: Literal["overload"]
    status: int | None = Field(default=500, ge=400, le=599)


class RunCancelledQueuedFault(_FaultBase):
    """With a queueing script: a generation that had to wait for a slot runs to its end once it gets one,
    even when its client left while it waited."""

    kind: Literal["run_cancelled_queued"]


class WireDriftFault(_FaultBase):
    """On a server of many wires (llama.cpp's stub), answer through the other engines' routes (/v1/…) from
    another token stream than through its own: one model, two answers to the same request."""

    kind: Literal["wire_drift"]


class MisreportLogprobsFault(_FaultBase):
    """Log-probabilities that break what holds for them: a top list in ascending order (the chosen token not
    first), a positive log-probability, a top list one entry short, or whole answers whose log-probabilities
    drift from the streamed ones."""

    kind: Literal["misreport_logprobs"]
    how: Literal["unsorted", "positive", "short", "drift"] = "unsorted"


class ResetFault(_FaultBase):
    """Reset the TCP connection (RST) in token frame `at_token`."""

    kind: Literal["reset"]
    at_token: int = Field(default=2, ge=0)


class IgnoreDisconnectFault(_FaultBase):
    """Keep generating (and keep the slot busy) after the client has gone."""

    kind: Literal["ignore_disconnect"]


class AbandonUnderLoadFault(_FaultBase):
    """End a stream without its final frame as soon as another generation request arrives while it runs
    (llama-cpp-python's server ends a running stream with [DONE] and no finish reason when another request
    arrives); a request that runs alone is served whole."""

    kind: Literal["abandon_under_load"]


ToolViolation = Literal[
    "invalid_arguments",
    "arguments_off_schema",
    "undeclared_name",
    "call_despite_none",
    "ignore_required",
    "wrong_finish",
    "stream_drift",
    "duplicate_ids",
    "empty_after_result",
]


class ToolViolationFault(_FaultBase):
    """Answer requests that declare tools wrongly, in one way:

    invalid_arguments (arguments that are not JSON), arguments_off_schema (JSON that the tool's schema
    refuses), undeclared_name (a tool the request never declared), call_despite_none (a call although the
    tool choice is none), ignore_required (text although a call is required), wrong_finish (a call whose
    finish reason says stop), stream_drift (streamed arguments other than the whole answer's),
    duplicate_ids (parallel calls sharing one id), empty_after_result (neither text nor a call after a tool's
    result)."""

    kind: Literal["tool_violation"]
    violation: ToolViolation


class StructuredViolationFault(_FaultBase):
    """Answer a request for structured output with JSON that violates it: off_schema (an instance missing a
    required property), not_object (a JSON array where one object was asked for)."""

    kind: Literal["structured_violation"]
    violation: Literal["off_schema", "not_object"]


class ResponsesViolationFault(_FaultBase):
    """On the Responses wire (``/v1/responses``), break it in one way, as servers that speak it do:
    unnumbered (events without their sequence_number), unplaced (item, part and delta events without their
    output_index and content_index), completed_at_budget (a response cut at max_output_tokens that says
    response.completed rather than response.incomplete)."""

    kind: Literal["responses_violation"]
    violation: Literal["unnumbered", "unplaced", "completed_at_budget"]


Fault = Annotated[
    StatusFault
    | ErrorInStreamFault
    | LegacyErrorLineFault
    | MissingFinalFault
    | CloseEarlyFault
    | DuplicateTokenFault
    | ReorderTokensFault
    | SkipTokenFault
    | MalformedJsonFault
    | ContentTypeFault
    | StallFault
    | OversizedFrameFault
    | NonUtf8Fault
    | SlowLorisFault
    | EndlessFault
    | OverrunFault
    | MisreportInvalidFault
    | MisreportUsageFault
    | SplitCharactersFault
    | ClaimAnyModelFault
    | SlowUnderLoadFault
    | LeakStopFault
    | StaleMetricsFault
    | AcceptAnyKeyFault
    | OverloadFault
    | RunCancelledQueuedFault
    | WireDriftFault
    | MisreportLogprobsFault
    | ResetFault
    | IgnoreDisconnectFault
    | ToolViolationFault
    | StructuredViolationFault
    | ResponsesViolationFault
    | AbandonUnderLoadFault,
    Field(discriminator="kind"),
]


class Framing(_Strict):
    """Valid wire variants a conforming client must accept."""

    line_ending: Literal["lf", "crlf", "cr"] = "lf"
    space_after_colon: bool = True
    keepalive_every: int | None = Field(default=None, ge=1, description="a ':' comment before every Nth frame")
    chunk_size: int | None = Field(default=None, ge=1, description="write the body in pieces of this many bytes")


class Determinism(_Strict):
    """How the stub's tokens (mis)behave across requests: the cases the determinism suite must catch."""

    ignore_seed: bool = Field(default=False, description="every request samples afresh, whatever its seed")
    fixed_seed: bool = Field(default=False, description="every request samples with the stub's own seed, not its own")
    ignore_top_k: bool = Field(
        default=False, description="a request that samples (temperature above 0) ignores top_k: top_k 1 is not greedy"
    )
    diverge_at: int | None = Field(default=None, ge=0, description="tokens differ from this index on")
    batch_variant_at: int | None = Field(
        default=None, ge=0, description="tokens differ from this index on when another request is in flight"
    )
    logprob_jitter: float = Field(default=0.0, ge=0, description="log-probabilities drift by this much per request")
    generator: str = Field(default="", description="a different value is a different token generator (an upgrade)")


class Script(_Strict):
    token_delay_ms: float = Field(default=0.0, ge=0)
    max_tokens: int | None = Field(default=None, ge=0, description="cap on generated tokens")
    health: Literal["ok", "loading"] = "ok"
    build: str | None = Field(default=None, description="engine version the stub reports")
    wire_version: str | None = Field(
        default=None,
        description="the engine release whose wire variant to play where versions differ "
        "(vllm: '0.10.0' for flat error bodies; llamaswap: '217' plain-text errors, '251' OpenAI-typed errors)",
    )
    queue: bool = Field(
        default=False,
        description="generate on at most the stub's slots (2) at once; a generation beyond them waits for one",
    )
    api_key: str | None = Field(
        default=None,
        description="require this key (Authorization: Bearer, or x-api-key) on every request but health checks",
    )
    swap_delay_ms: float = Field(
        default=0.0, ge=0, description="llamaswap: how long loading a model that is not loaded holds the request"
    )
    framing: Framing = Framing()
    faults: tuple[Fault, ...] = ()
    determinism: Determinism = Determinism()


class ScriptError(ValueError):
    """A script file that cannot be read or does not validate; the message names file and field."""


def load_script(path: Path) -> Script:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read script: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ScriptError(f"{path}: the script is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScriptError(f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}") from None
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p).encode("unicode_escape").decode() for p in first["loc"]) or "(top level)"
        raise ScriptError(f"{path}: field {where}: {first['msg']}") from None


def fault_kinds() -> list[str]:
    """The `kind` of every fault a script can play, in the catalogue's order."""
    union = get_args(get_args(Fault)[0])
    return [get_args(fault.model_fields["kind"].annotation)[0] for fault in union]
