"""Steps of the OpenAI-compatibility and Responses features: streams judged by harness.openai_compat."""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from conform.adapters import ChatMessage, TaskRequest
from conform.harness.checks import run_checks
from conform.harness.openai_compat import check_error_envelope, check_same_text, openai_adapter, seeded_chat
from conform.harness.runtime import ScenarioRuntime
from conform.harness.stream import StreamRecord

CHAT = (ChatMessage(role="user", content="Tell me about lighthouses."),)


@when(parsers.parse("I stream a chat completion of {count:d} tokens"), target_fixture="stream")
def stream_chat(conform_runtime: ScenarioRuntime, count: int) -> StreamRecord:
    request = TaskRequest(messages=CHAT, max_tokens=count, seed=42, temperature=0.0, model=conform_runtime.target.model)
    return conform_runtime.stream(request)


@when(parsers.parse("I stream a response of {count:d} tokens"), target_fixture="stream")
def stream_response(conform_runtime: ScenarioRuntime, count: int) -> StreamRecord:
    """One user message through the Responses API (the adapter's own wire), greedy."""
    return stream_chat(conform_runtime, count)


@when("I stream the same seeded chat completion twice", target_fixture="pair")
def stream_twice(conform_runtime: ScenarioRuntime) -> tuple[StreamRecord, StreamRecord]:
    model = conform_runtime.target.model
    return conform_runtime.stream(seeded_chat(model, 1234, 16)), conform_runtime.stream(seeded_chat(model, 1234, 16))


@then("the stream ends with data: [DONE]")
def ends_with_done(stream: StreamRecord) -> None:
    run_checks(stream, "openai.done_terminator")


@then("the last chunk with choices names the finish reason")
def finish_on_last(stream: StreamRecord) -> None:
    run_checks(stream, "openai.finish_reason")


@then("a last chunk with empty choices carries the usage")
def usage_chunk(stream: StreamRecord) -> None:
    run_checks(stream, "openai.include_usage")


@then("the usage counts agree with the tokens streamed")
def usage_agrees(stream: StreamRecord) -> None:
    run_checks(stream, "openai.usage_consistent")


@then("both completions have the same text")
def same_text(pair: tuple[StreamRecord, StreamRecord]) -> None:
    check_same_text(*pair)


@then("an invalid chat request is refused with the OpenAI error envelope")
def error_envelope(conform_runtime: ScenarioRuntime) -> None:
    adapter = openai_adapter(conform_runtime.adapter)
    model = conform_runtime.run(adapter.default_model())
    conform_runtime.run(check_error_envelope(adapter, model))


@then("every event carries its sequence number")
def events_numbered(stream: StreamRecord) -> None:
    run_checks(stream, "responses.sequence_numbers")


@then("every item, part and delta event carries its indices")
def events_placed(stream: StreamRecord) -> None:
    run_checks(stream, "responses.event_indices")


@then("a response cut at its budget ends incomplete for max_output_tokens")
def incomplete_at_budget(stream: StreamRecord) -> None:
    run_checks(stream, "responses.incomplete_at_budget")
