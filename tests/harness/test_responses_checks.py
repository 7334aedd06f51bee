"""The Responses API checks: each passes on the well-behaved stub, and fails, with a detail a vendor can act
on, on a stub scripted to break the wire the way real servers do (its negative control)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conform.adapters import End, Started, TaskRequest, TokenEvent, create_adapter
from conform.harness.checks import CheckFailure
from conform.harness.openai_compat import event_indices, incomplete_at_budget, sequence_numbers
from conform.harness.stream import StreamRecord, collect
from conform.stubs import Script, StubServer
from conform.stubs.script import ResponsesViolationFault
from tests.harness.test_checks import tokens
from tests.helpers import STUB_OPTIONS

PROMPT = "Tell me about lighthouses."


async def _collected(script: Script, max_tokens: int = 4) -> StreamRecord:
    """One greedy user message of `max_tokens` through the Responses stub playing `script`."""
    async with StubServer("responses", script) as stub:
        adapter = create_adapter("responses", stub.url, STUB_OPTIONS)
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


@pytest.mark.parametrize(
    ("violation", "judge", "title", "opening", "also"),
    [
        (
            # 4 events before the deltas, 4 deltas, 4 after them: what llama.cpp b11434 sends, none numbered.
            "unnumbered",
            sequence_numbers,
            "events without a sequence_number",
            "12 of 12 events carry no sequence_number (the first a response.created)",
            "the openai SDK's event types require it",
        ),
        (
            "unplaced",
            event_indices,
            "events that do not say where they belong",
            "response.output_item.added lacks output_index; response.content_part.added lacks output_index, "
            "content_index; response.output_text.delta lacks output_index, content_index; ",
            "the openai SDK's responses.stream() fails",
        ),
        (
            "completed_at_budget",
            incomplete_at_budget,
            "budget reached but the response says it is complete",
            "all 4 tokens of max_output_tokens 4 were produced, but the stream ended with response.completed "
            "(status 'completed', incomplete_details None)",
            "expected response.incomplete with incomplete_details.reason 'max_output_tokens'",
        ),
    ],
    ids=["unnumbered", "unplaced", "completed_at_budget"],
)
async def test_each_check_fails_on_a_stub_that_breaks_the_wire_its_way(
    violation: str, judge: Callable[[StreamRecord], None], title: str, opening: str, also: str
) -> None:
    stream = await _collected(_breaking(violation))
    with pytest.raises(CheckFailure) as failed:
        judge(stream)
    assert failed.value.title == title
    assert failed.value.detail.startswith(opening) and also in failed.value.detail, failed.value.detail


def _ended(terminal: str, produced: int, details: dict[str, Any] | None) -> StreamRecord:
    raw = {"terminal": terminal, "status": terminal.removeprefix("response."), "incomplete_details": details}
    raw["usage"] = {"output_tokens": produced}
    events: list[TokenEvent] = [Started("t", 0.0), *tokens(*range(produced)), End("length", None, 0.0, raw=raw)]
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
