"""Checks: small named assertions over what a target did.

A stream check is a plain function ``(record: StreamRecord) -> None`` filed by
``@check(name)``; it raises CheckFailure, whose short title is stable and
whose detail tells a vendor what to fix. The detail is what the report shows.
Run-level checks (engine-side cancel, classification) are plain functions
below, with the same failure type.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable

from conform.adapters import End, ErrorKind, HttpAdapter, Metrics, Started, Token, WorkerError

from .stream import StreamRecord

__all__ = [
    "CHECKS",
    "CheckFailure",
    "check",
    "check_classified",
    "check_counters_rose",
    "check_engine_stopped",
    "check_logprobs",
    "check_max_tokens",
    "check_prompt_tokens",
    "check_reassembles",
    "check_seed_matters",
    "check_stop_sequence",
    "check_top_k_1_is_greedy",
    "check_utf8_integrity",
    "run_checks",
]

StreamCheck = Callable[[StreamRecord], None]

CHECKS: dict[str, StreamCheck] = {}
"""Stream checks by name, filled at import by @check and only read afterwards."""


class CheckFailure(AssertionError):
    """A check that did not hold. `title` is stable and short; `detail` says observed vs expected."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(f"{title}: {detail}")
        self.title = title
        self.detail = detail


def check(name: str) -> Callable[[StreamCheck], StreamCheck]:
    def register(function: StreamCheck) -> StreamCheck:
        if name in CHECKS:
            raise ValueError(f"check {name!r} is defined twice ({CHECKS[name].__module__} and {function.__module__})")
        CHECKS[name] = function
        return function

    return register


def run_checks(record: StreamRecord, *names: str) -> None:
    for name in names:
        CHECKS[name](record)


@check("stream.completed")
def stream_completed(record: StreamRecord) -> None:
    """The request was admitted and the stream reached the engine's end marker without an error."""
    if record.error is not None:
        tokens = len(record.tokens)
        raise CheckFailure("stream failed", f"{record.error} (after {tokens} token{'s' * (tokens != 1)})")
    if record.end is None:
        raise CheckFailure("stream did not end", "no end event was received")


@check("stream.grammar")
def stream_grammar(record: StreamRecord) -> None:
    """Events follow ``Started Token* Metrics? End``."""
    events = record.events
    if not events or not isinstance(events[0], Started):
        raise CheckFailure("stream grammar broken", "the first event is not Started")
    body = events[1:]
    if body and isinstance(body[-1], End):
        body = body[:-1]
    if body and isinstance(body[-1], Metrics):
        body = body[:-1]
    stray = next((e for e in body if not isinstance(e, Token)), None)
    if stray is not None:
        raise CheckFailure("stream grammar broken", f"{type(stray).__name__} arrived between tokens")


@check("stream.has_tokens")
def stream_has_tokens(record: StreamRecord) -> None:
    """At least one token with non-empty text was streamed."""
    if not any(t.text for t in record.tokens):
        raise CheckFailure("no text streamed", f"{len(record.tokens)} tokens arrived, none with text")


@check("stream.finish_reason")
def stream_finish_reason(record: StreamRecord) -> None:
    """The end event names why generation stopped (stop or length)."""
    end = record.end
    if end is None:
        raise CheckFailure("no finish reason", "the stream has no end event")
    if end.finish_reason not in ("stop", "length"):
        raise CheckFailure("unexpected finish reason", f"got {end.finish_reason!r}, expected 'stop' or 'length'")


@check("stream.usage")
def stream_usage(record: StreamRecord) -> None:
    """The completion token count in the end event equals the tokens streamed."""
    end = record.end
    if end is None or end.usage is None or end.usage.completion_tokens is None:
        raise CheckFailure("usage missing", "the end event reports no completion token count")
    streamed = len(record.tokens)
    if end.usage.completion_tokens != streamed:
        raise CheckFailure(
            "usage does not match the stream",
            f"end reports {end.usage.completion_tokens} completion tokens, {streamed} were streamed",
        )


@check("stream.token_ids")
def stream_token_ids(record: StreamRecord) -> None:
    """Every streamed token carries its vocabulary id."""
    missing = [t.index for t in record.tokens if t.token_id is None]
    if missing:
        raise CheckFailure("token ids missing", f"tokens at indices {missing[:10]} have no id")


@check("stream.indices")
def stream_indices(record: StreamRecord) -> None:
    """Token indices start at 0 and increase by exactly one: no duplicate, no reordering, no gap.

    The whole sequence is read before judging, so that a swap is reported as a
    reordering, not as the gap it first looks like.
    """
    indices = [t.index for t in record.tokens]
    if indices == list(range(len(indices))):
        return  # the stream of every conforming engine, compared in C: this check runs on every stream
    seen: set[int] = set()
    for index in indices:
        if index in seen:
            raise CheckFailure("duplicated token index", f"token index {index} arrived twice")
        seen.add(index)
    for previous, index in itertools.pairwise(indices):
        if index < previous:
            raise CheckFailure("token indices out of order", f"token index {previous} was followed by {index}")
    for expected, index in enumerate(indices):
        if index != expected:
            missing = index - expected
            if expected == 0:
                raise CheckFailure("gap in token indices", f"the first token has index {index}, expected 0")
            raise CheckFailure(
                "gap in token indices",
                f"token index {index} followed {expected - 1}: {missing} token{'s' * (missing != 1)} missing",
            )


def check_reassembles(record: StreamRecord, reference: str) -> None:
    """The streamed pieces, concatenated in order, equal the complete text of the same request."""
    streamed = record.text
    if streamed != reference:
        at = next((i for i, (a, b) in enumerate(zip(streamed, reference, strict=False)) if a != b), None)
        at = min(len(streamed), len(reference)) if at is None else at
        raise CheckFailure(
            "streamed text differs from the complete text",
            f"they differ at character {at}: streamed {streamed[at : at + 30]!r}, complete {reference[at : at + 30]!r}",
        )


def check_max_tokens(record: StreamRecord, budget: int) -> None:
    """A request for `budget` tokens streams exactly that many, unless the end names an earlier stop; the
    finish reason is ``length`` exactly when the budget was reached."""
    stream_completed(record)
    assert record.end is not None
    streamed, reason = len(record.tokens), record.end.finish_reason
    if streamed > budget:
        raise CheckFailure(
            "more tokens than max_tokens",
            f"max_tokens {budget} streamed {streamed} tokens ({streamed - budget} too many), finish reason "
            f"{reason!r}: the engine must stop at the budget",
        )
    if streamed == budget and reason != "length":
        raise CheckFailure(
            "budget reached but not said",
            f"all {budget} tokens of max_tokens {budget} streamed, but the finish reason is {reason!r}, "
            "expected 'length'",
        )
    if streamed < budget and reason == "length":
        raise CheckFailure(
            "length claimed before the budget",
            f"max_tokens {budget}: the finish reason is 'length' after only {streamed} tokens; an engine that "
            "stops early must say why (stop)",
        )


def check_prompt_tokens(record: StreamRecord, counted: int) -> None:
    """The usage's prompt token count is `counted`, what the engine's own tokenizer makes of the prompt."""
    stream_completed(record)
    assert record.end is not None
    usage = record.end.usage
    if usage is None or usage.prompt_tokens is None:
        raise CheckFailure("no prompt token count", "the end of the stream reports no prompt token count")
    if usage.prompt_tokens != counted:
        raise CheckFailure(
            "usage disagrees with the tokenizer",
            f"the usage reports {usage.prompt_tokens} prompt tokens, the engine's own tokenizer counts {counted} "
            "for the same prompt: one of the two miscounts",
        )


def _first_difference(a: StreamRecord, b: StreamRecord) -> tuple[int, str, str] | None:
    """Where two streams first differ (token ids where both have them, else text pieces), with both tokens."""
    use_ids = all(t.token_id is not None for t in (*a.tokens, *b.tokens))
    keys_a = [t.token_id if use_ids else t.text for t in a.tokens]
    keys_b = [t.token_id if use_ids else t.text for t in b.tokens]
    for n, (x, y) in enumerate(itertools.zip_longest(keys_a, keys_b)):
        if x != y:
            text_a = a.tokens[n].text if n < len(a.tokens) else "(the end)"
            text_b = b.tokens[n].text if n < len(b.tokens) else "(the end)"
            return n, text_a, text_b
    return None


def check_top_k_1_is_greedy(greedy: StreamRecord, top_k_1: StreamRecord) -> None:
    """Sampling at temperature 1 with top_k 1 gives the greedy (temperature 0) tokens: one candidate is left."""
    stream_completed(greedy)
    stream_completed(top_k_1)
    differs = _first_difference(greedy, top_k_1)
    if differs is not None:
        at, want, got = differs
        raise CheckFailure(
            "top_k 1 is not greedy",
            f"at token {at}, greedy gave {want!r} but temperature 1 with top_k 1 gave {got!r}: with one candidate "
            "left, sampling must pick the most likely token (is top_k ignored, or applied after sampling?)",
        )


def check_seed_matters(streams: list[StreamRecord], seeds: list[int]) -> None:
    """Sampling (temperature 1) with different seeds does not give the same completion every time."""
    for stream in streams:
        stream_completed(stream)
    texts = {stream.text for stream in streams}
    if len(texts) == 1:
        raise CheckFailure(
            "the seed changes nothing",
            f"temperature 1 with seeds {', '.join(map(str, seeds))} gave the same {len(streams[0].tokens)} tokens "
            f"each time ({streams[0].text[:50]!r}): the engine ignores the seed, or does not sample",
        )


def check_stop_sequence(greedy: StreamRecord, stopped: StreamRecord, stop: str) -> None:
    """With `stop` (taken from `greedy`'s text), the same request's output is the greedy text cut before the
    stop string's first occurrence, holds no part of it, and ends with finish reason ``stop``."""
    stream_completed(greedy)
    stream_completed(stopped)
    assert stopped.end is not None
    expected = greedy.text[: greedy.text.index(stop)]
    if stop in stopped.text:
        at = stopped.text.index(stop)
        raise CheckFailure(
            "the stop string leaked",
            f"the stop string {stop!r} is in the output at character {at} "
            f"({stopped.text[max(0, at - 20) : at + len(stop) + 10]!r}): generation must end before it, and no "
            "part of it be sent",
        )
    if stopped.text != expected:
        raise CheckFailure(
            "the output is not the greedy text cut at the stop string",
            f"with stop {stop!r} the output is {stopped.text[-50:]!r} ({len(stopped.text)} characters); the same "
            f"request's greedy text cut before the stop string is {expected[-50:]!r} ({len(expected)} characters)",
        )
    if stopped.end.finish_reason != "stop":
        raise CheckFailure(
            "the end does not say stop",
            f"the generation ended at the stop string {stop!r} but the finish reason is "
            f"{stopped.end.finish_reason!r}, expected 'stop'",
        )


def check_counters_rose(before: dict[str, float], after: dict[str, float], served: dict[str, float]) -> None:
    """Each of the engine's counters of what it served rose by exactly what was served meanwhile."""
    for what, amount in served.items():
        if what not in before or what not in after:
            raise CheckFailure(
                "a counter is missing", f"the metrics have no counter of {what.replace('_', ' ')} (before or after)"
            )
        rose = after[what] - before[what]
        if rose != amount:
            raise CheckFailure(
                "the metrics do not count what was served",
                f"the counter of {what.replace('_', ' ')} rose by {rose:g} while {amount:g} were served: it must "
                "count every one, once",
            )


def check_logprobs(record: StreamRecord, listed: int, whole: list[float], rtol: float = 0.0) -> None:
    """Every log-probability is at most 0; each token lists `listed` most likely tokens, in descending order,
    led (under greedy decoding) by the chosen token; the whole answer's log-probabilities are the streamed
    ones, within `rtol` (0: bitwise)."""
    stream_completed(record)
    for token in record.tokens:
        if token.logprob is None:
            raise CheckFailure(
                "a token has no log-probability", f"token {token.index} ({token.text!r}) came without one"
            )
        if token.logprob > 0:
            raise CheckFailure(
                "a log-probability above 0",
                f"token {token.index} ({token.text!r}) has log-probability {token.logprob}: a probability above 1",
            )
        values = [logprob for _, _, logprob in token.top]
        if len(values) != listed:
            raise CheckFailure(
                "the top list has the wrong length",
                f"token {token.index} lists {len(values)} most likely tokens, {listed} were asked for",
            )
        if values != sorted(values, reverse=True):
            raise CheckFailure(
                "the top list is not sorted",
                f"token {token.index} lists log-probabilities {values}: most likely first, in descending order",
            )
        chosen = token.top[0]
        if (chosen[0] is not None and token.token_id is not None and chosen[0] != token.token_id) or (
            chosen[2] != token.logprob
        ):
            raise CheckFailure(
                "greedy did not choose the most likely token",
                f"token {token.index} is {token.text!r} ({token.logprob}), but the most likely listed is "
                f"{chosen[1]!r} ({chosen[2]}): greedy decoding must choose the top-1",
            )
    streamed = [t.logprob for t in record.tokens]
    if len(whole) != len(streamed):
        raise CheckFailure(
            "the whole answer's log-probabilities do not match the stream",
            f"the whole answer lists {len(whole)} log-probabilities, the stream had {len(streamed)} tokens",
        )
    for n, (a, b) in enumerate(zip(streamed, whole, strict=True)):
        if a is not None and not math.isclose(a, b, rel_tol=rtol, abs_tol=0.0):
            raise CheckFailure(
                "streamed and whole log-probabilities differ",
                f"token {n}: streamed {a}, whole {b} (relative tolerance {rtol:g}): the same request, answered "
                "whole or streamed, must give the same numbers",
            )


REPLACEMENT_CHARACTER = "\ufffd"


def check_utf8_integrity(record: StreamRecord, whole: str | None = None, detokenized: str | None = None) -> None:
    """Text in any script streams whole: no piece holds U+FFFD (the bytes of one character split across two
    tokens, each decoded alone); the pieces join to `whole`, the non-streamed text of the same request; and
    to `detokenized`, the engine's own reading of the streamed token ids, where it has one."""
    stream_completed(record)
    broken = next((t for t in record.tokens if REPLACEMENT_CHARACTER in t.text), None)
    if broken is not None:
        raise CheckFailure(
            "U+FFFD in the stream",
            f"token {broken.index} streamed as {broken.text!r} in {record.text[:60]!r}: a character's UTF-8 bytes "
            "were sent before its last byte arrived; hold an incomplete character back until the next token "
            "completes it",
        )
    if whole is not None:
        check_reassembles(record, whole)
    if detokenized is not None and detokenized != record.text:
        raise CheckFailure(
            "token ids read back as other text",
            f"the streamed tokens' ids detokenize to {detokenized[:60]!r}, but the stream said {record.text[:60]!r}",
        )


def check_classified(error: WorkerError | None, kind: ErrorKind, retriable: bool, *, tokens: int = 0) -> None:
    """The request failed, as exactly this error kind and retriability."""
    if error is None:
        raise CheckFailure("request did not fail", f"expected {kind.value}, but it succeeded ({tokens} tokens)")
    if error.kind is not kind:
        raise CheckFailure("wrong error kind", f"expected {kind.value}, got {error}")
    if error.retriable is not retriable:
        expected = "retriable" if retriable else "not retriable"
        raise CheckFailure("wrong retriability", f"{kind.value} should be {expected}: {error}")


async def check_engine_stopped(adapter: HttpAdapter, within_s: float, poll_s: float = 0.05) -> float:
    """After a disconnect, the engine reports no busy slot within `within_s`; returns how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    busy: int | None = None
    while True:
        busy = (await adapter.props()).busy_slots
        elapsed = loop.time() - start
        if busy == 0:
            return elapsed
        if busy is None:
            raise CheckFailure("cannot observe the engine", "the engine stopped reporting slot activity")
        if elapsed >= within_s:
            raise CheckFailure(
                "generation continued after disconnect",
                f"{busy} slot{'s' * (busy != 1)} still processing {elapsed:.1f} s after the client disconnected "
                f"(expected none within {within_s:g} s): the engine must stop generating when the client goes away",
            )
        await asyncio.sleep(poll_s)
