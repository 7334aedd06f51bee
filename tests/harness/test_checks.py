"""Stream checks on hand-built event sequences: each can pass, and each fails with its exact detail."""

from __future__ import annotations

import pytest

from conform.adapters import End, ErrorKind, Metrics, Started, TaskRequest, Token, TokenEvent, Usage, WorkerError
from conform.harness.checks import CHECKS, CheckFailure, check_classified, check_reassembles, run_checks
from conform.harness.stream import StreamRecord


def record(*events: TokenEvent, error: WorkerError | None = None) -> StreamRecord:
    return StreamRecord(TaskRequest(prompt="x"), list(events), error)


def tokens(*indices: int, text: str = " a") -> list[Token]:
    return [Token(i, text, 100 + i, 0.0) for i in indices]


def good(n: int = 3) -> StreamRecord:
    return record(Started("t", 0.0), *tokens(*range(n)), Metrics({}, 0.0), End("length", Usage(5, n), 0.0))


def test_a_good_stream_passes_every_stream_check() -> None:
    """Every check of harness/checks.py: the registry also holds the wire checks of whichever modules the
    process imported (openai_compat's judge what only an OpenAI-family End carries)."""
    generic = [
        name for name, function in CHECKS.items() if function.__module__ == CHECKS["stream.completed"].__module__
    ]
    assert "stream.indices" in generic and not any(name.startswith(("openai.", "responses.")) for name in generic)
    run_checks(good(), *generic)


@pytest.mark.parametrize(
    ("indices", "title", "detail"),
    [
        ((0, 1, 1, 2), "duplicated token index", "token index 1 arrived twice"),
        ((0, 2, 1, 3), "token indices out of order", "token index 2 was followed by 1"),
        ((0, 1, 3), "gap in token indices", "token index 3 followed 1: 1 token missing"),
        ((0, 4), "gap in token indices", "token index 4 followed 0: 3 tokens missing"),
        ((1, 2), "gap in token indices", "the first token has index 1, expected 0"),
    ],
)
def test_index_problems_are_named(indices: tuple[int, ...], title: str, detail: str) -> None:
    stream = record(Started("t", 0.0), *tokens(*indices), End("stop", None, 0.0))
    with pytest.raises(CheckFailure) as failure:
        run_checks(stream, "stream.indices")
    assert (failure.value.title, failure.value.detail) == (title, detail)


def test_grammar_rejects_an_event_between_tokens() -> None:
    stream = record(Started("t", 0.0), *tokens(0), Metrics({}, 0.0), *tokens(1), End("stop", None, 0.0))
    with pytest.raises(CheckFailure, match="Metrics arrived between tokens"):
        run_checks(stream, "stream.grammar")


def test_grammar_needs_started_first() -> None:
    with pytest.raises(CheckFailure, match="first event is not Started"):
        run_checks(record(*tokens(0), End("stop", None, 0.0)), "stream.grammar")


def test_completed_reports_the_error_and_token_count() -> None:
    error = WorkerError(ErrorKind.WORKER_RESET, "peer closed", status=200, in_stream=True)
    with pytest.raises(CheckFailure) as failure:
        run_checks(record(Started("t", 0.0), *tokens(0, 1), error=error), "stream.completed")
    assert failure.value.detail == "worker_reset (HTTP 200): peer closed (after 2 tokens)"


def test_usage_must_match_the_stream() -> None:
    stream = record(Started("t", 0.0), *tokens(0, 1), End("length", Usage(3, 5), 0.0))
    with pytest.raises(CheckFailure, match="end reports 5 completion tokens, 2 were streamed"):
        run_checks(stream, "stream.usage")


def test_finish_reason_must_be_known() -> None:
    with pytest.raises(CheckFailure, match="got 'exploded'"):
        run_checks(record(Started("t", 0.0), End("exploded", None, 0.0)), "stream.finish_reason")


def test_missing_token_ids_are_listed() -> None:
    stream = record(Started("t", 0.0), Token(0, " a", None, 0.0), End("stop", None, 0.0))
    with pytest.raises(CheckFailure, match=r"indices \[0\] have no id"):
        run_checks(stream, "stream.token_ids")


def test_reassembly_names_the_first_differing_character() -> None:
    stream = record(Started("t", 0.0), Token(0, "abc", 1, 0.0), Token(1, "def", 2, 0.0))
    check_reassembles(stream, "abcdef")
    with pytest.raises(CheckFailure, match="differ at character 3"):
        check_reassembles(stream, "abcxef")


def test_classification_check() -> None:
    error = WorkerError(ErrorKind.RATE_LIMITED, "slow", status=429)
    check_classified(error, ErrorKind.RATE_LIMITED, True)
    with pytest.raises(CheckFailure, match="expected auth"):
        check_classified(error, ErrorKind.AUTH, False)
    with pytest.raises(CheckFailure, match="should be not retriable"):
        check_classified(error, ErrorKind.RATE_LIMITED, False)
    with pytest.raises(CheckFailure, match="request did not fail"):
        check_classified(None, ErrorKind.AUTH, False)


def test_a_check_name_is_registered_once() -> None:
    from conform.harness.checks import check

    with pytest.raises(ValueError, match="defined twice"):
        check("stream.indices")(lambda r: None)
