"""The Responses API checks: each passes on the well-behaved stub, and fails, with a detail a vendor can act
on, on a stub scripted to break the wire the way real servers do (its negative control)."""

from __future__ import annotations

from typing import Any

import pytest

from conform.adapters import AdapterOptions, End, RetryPolicy, Started, TaskRequest, Timeouts, create_adapter
from conform.harness.checks import CheckFailure
from conform.harness.openai_compat import event_indices, incomplete_at_budget, sequence_numbers
from conform.harness.stream import StreamRecord, collect
from conform.stubs import Script, StubServer
from conform.stubs.script import ResponsesViolationFault
from tests.harness.test_checks import tokens

PROMPT = "Tell me about lighthouses."


async def _collected(script: Script, max_tokens: int = 4) -> StreamRecord:
    """One greedy user message of `max_tokens` through the Responses stub playing `script`."""
    async with StubServer("responses", script) as stub:
        options = AdapterOptions(timeouts=Timeouts(total=10.0), retry=RetryPolicy.none())
        adapter = create_adapter("responses", stub.url, options)
        try:
            return await collect(adapter, TaskRequest(prompt=PROMPT, max_tokens=max_tokens, temperature=0.0))
        finally:
            await adapter.aclose()


def _breaking(violation: Any) -> Script:
    return Script(faults=(ResponsesViolationFault(kind="responses_violation", violation=violation),))


async def test_every_responses_check_holds_on_the_well_behaved_stub() -> None:
    stream = await _collected(Script())
    sequence_numbers(stream)
    event_indices(stream)
    incomplete_at_budget(stream)
    assert stream.end is not None and stream.end.raw["terminal"] == "response.incomplete"


async def test_sequence_numbers_fail_on_a_stub_whose_events_carry_none() -> None:
    stream = await _collected(_breaking("unnumbered"))
    with pytest.raises(CheckFailure) as failed:
        sequence_numbers(stream)
    assert failed.value.title == "events without a sequence_number"
    # 4 events before the deltas, 4 deltas, 4 after them: what llama.cpp b11434 sends, none numbered.
    assert failed.value.detail.startswith("12 of 12 events carry no sequence_number (the first a response.created)")


async def test_event_indices_fail_on_a_stub_whose_events_do_not_say_where_they_belong() -> None:
    stream = await _collected(_breaking("unplaced"))
    with pytest.raises(CheckFailure) as failed:
        event_indices(stream)
    assert failed.value.title == "events that do not say where they belong"
    assert failed.value.detail.startswith(
        "response.output_item.added lacks output_index; response.content_part.added lacks output_index, "
        "content_index; response.output_text.delta lacks output_index, content_index; "
    )
    assert "the openai SDK's responses.stream() fails" in failed.value.detail


async def test_incomplete_at_budget_fails_on_a_stub_that_says_completed_at_the_budget() -> None:
    stream = await _collected(_breaking("completed_at_budget"))
    with pytest.raises(CheckFailure) as failed:
        incomplete_at_budget(stream)
    assert failed.value.title == "budget reached but the response says it is complete"
    assert failed.value.detail.startswith(
        "all 4 tokens of max_output_tokens 4 were produced, but the stream ended with response.completed "
        "(status 'completed', incomplete_details None)"
    )


def _ended(terminal: str, produced: int, details: dict[str, Any] | None) -> StreamRecord:
    raw = {"terminal": terminal, "status": terminal.removeprefix("response."), "incomplete_details": details}
    raw["usage"] = {"output_tokens": produced}
    events = [Started("t", 0.0), *tokens(*range(produced)), End("length", None, 0.0, raw=raw)]
    return StreamRecord(TaskRequest(prompt=PROMPT, max_tokens=4), events)


def test_a_response_that_stopped_before_its_budget_is_completed() -> None:
    incomplete_at_budget(_ended("response.completed", 2, None))


@pytest.mark.parametrize(
    ("terminal", "produced", "details", "title"),
    [
        ("response.incomplete", 2, {"reason": "max_output_tokens"}, "incomplete before the budget"),
        ("response.incomplete", 4, {"reason": "content_filter"}, "budget reached but the response says it is complete"),
    ],
)
def test_incomplete_at_budget_names_a_status_that_lies(
    terminal: str, produced: int, details: dict[str, Any], title: str
) -> None:
    with pytest.raises(CheckFailure) as failed:
        incomplete_at_budget(_ended(terminal, produced, details))
    assert failed.value.title == title and terminal in failed.value.detail
