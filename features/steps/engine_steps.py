"""Steps shared by every feature. Thin: each one calls into harness/ and names what it checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_bdd import given, parsers, then, when

from conform.adapters import ErrorKind, TaskRequest, WorkerError
from conform.harness.checks import CheckFailure, check_classified, check_engine_stopped, check_reassembles, run_checks
from conform.harness.plugin_session import SCENARIO_KEY, ScenarioInfo
from conform.harness.runtime import ScenarioRuntime
from conform.harness.stream import StreamRecord
from conform.stubs import Script, load_script
from conform.stubs.script import StatusFault

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def script_dir(request: pytest.FixtureRequest) -> Path:
    """Stub scripts sit beside their feature, in a folder of the feature's name."""
    info: ScenarioInfo = request.node.stash[SCENARIO_KEY]
    return info.feature_path.with_suffix("")


def completion_request(runtime: ScenarioRuntime, max_tokens: int, prompt: str = PROMPT) -> TaskRequest:
    """The request of every generation step: seeded, greedy, no prompt cache, the target's model."""
    return TaskRequest(
        prompt=prompt,
        max_tokens=max_tokens,
        seed=42,
        temperature=0.0,
        cache_prompt=False,
        model=runtime.target.model,
    )


@given("the engine under test")
def engine_under_test(conform_runtime: ScenarioRuntime, request: pytest.FixtureRequest) -> None:
    """A stub plays its feature's default.json script if there is one; a live engine is itself."""
    default = script_dir(request) / "default.json"
    if conform_runtime.target.is_stub and default.exists():
        conform_runtime.use_script(load_script(default))


@given(parsers.parse('the stub plays the "{name}" script'))
def stub_plays(conform_runtime: ScenarioRuntime, request: pytest.FixtureRequest, name: str) -> None:
    conform_runtime.use_script(load_script(script_dir(request) / f"{name}.json"))


@given(parsers.parse('the stub answers every generation with HTTP {status:d} "{message}"'))
def stub_answers_status(conform_runtime: ScenarioRuntime, status: int, message: str) -> None:
    conform_runtime.use_script(Script(faults=(StatusFault(kind="status", status=status, message=message),)))


@given(parsers.parse("the client gives up after {seconds:g} seconds without data"))
def client_idle_timeout(conform_runtime: ScenarioRuntime, seconds: float) -> None:
    conform_runtime.set_idle_timeout(seconds)


@when(parsers.parse("I stream a completion of {count:d} tokens"), target_fixture="stream")
def stream_completion(conform_runtime: ScenarioRuntime, count: int) -> StreamRecord:
    return conform_runtime.stream(completion_request(conform_runtime, count))


@when(
    parsers.parse("I stream a completion of {count:d} tokens and disconnect after {after:d} tokens"),
    target_fixture="stream",
)
def stream_and_disconnect(conform_runtime: ScenarioRuntime, count: int, after: int) -> StreamRecord:
    request = completion_request(conform_runtime, count)
    return conform_runtime.stream(request, cancel_after=after)


@when("I stream a completion whose prompt exceeds the context window", target_fixture="stream")
def stream_too_long(conform_runtime: ScenarioRuntime) -> StreamRecord:
    adapter = conform_runtime.adapter
    context = conform_runtime.run(adapter.props()).ctx_max or 8192
    prompt = "lighthouse " * (context * 2)
    return conform_runtime.stream(completion_request(conform_runtime, 8, prompt))


@when("I call an endpoint the engine does not have", target_fixture="failure")
def call_unknown_endpoint(conform_runtime: ScenarioRuntime) -> WorkerError | None:
    try:
        conform_runtime.run(conform_runtime.adapter.http.request("GET", "/conform-no-such-endpoint", retry=False))
    except WorkerError as error:
        return error
    return None


@then("the stream is started, yields tokens and ends")
def stream_is_well_formed(stream: StreamRecord) -> None:
    run_checks(stream, "stream.completed", "stream.grammar", "stream.has_tokens")


@then("the end names a finish reason")
def end_names_finish_reason(stream: StreamRecord) -> None:
    run_checks(stream, "stream.finish_reason")


@then("the usage counts the tokens streamed")
def usage_counts_tokens(stream: StreamRecord) -> None:
    run_checks(stream, "stream.completed", "stream.usage")


@then("every token carries its id")
def tokens_carry_ids(stream: StreamRecord) -> None:
    run_checks(stream, "stream.completed", "stream.token_ids")


@then("token indices start at 0 and increase by one")
def indices_increase(stream: StreamRecord) -> None:
    run_checks(stream, "stream.completed", "stream.indices")


@then("the pieces concatenate to the complete text of the same request")
def pieces_reassemble(conform_runtime: ScenarioRuntime, stream: StreamRecord) -> None:
    run_checks(stream, "stream.completed")
    try:
        reference = conform_runtime.run(conform_runtime.adapter.complete(stream.request))
    except WorkerError as error:
        raise CheckFailure("complete text unavailable", f"the non-streamed request failed: {error}") from None
    check_reassembles(stream, reference)


@then(parsers.parse("the request fails as {kind}, {retriability}"))
def request_fails_as(stream: StreamRecord, kind: str, retriability: str) -> None:
    check_classified(stream.error, ErrorKind(kind), retriability == "retriable", tokens=len(stream.tokens))


@then(parsers.parse("the call fails as {kind}, {retriability}"))
def call_fails_as(failure: WorkerError | None, kind: str, retriability: str) -> None:
    check_classified(failure, ErrorKind(kind), retriability == "retriable")


@then("the stream ends as cancelled")
def stream_cancelled(stream: StreamRecord) -> None:
    if stream.cancelled_at is None:
        raise CheckFailure("never cancelled", f"the stream ended after {len(stream.tokens)} tokens, before the cancel")
    if stream.error is None or stream.error.kind is not ErrorKind.CANCELLED:
        outcome = "completed normally" if stream.error is None else f"failed: {stream.error}"
        raise CheckFailure("cancel not observed", f"after cancel the stream {outcome}")


@then("no token arrives after the cancel")
def nothing_after_cancel(stream: StreamRecord) -> None:
    if stream.tokens_after_cancel:
        raise CheckFailure("tokens after cancel", f"{stream.tokens_after_cancel} tokens arrived after the cancel")


@then(parsers.parse("the engine stops generating within {seconds:g} seconds"))
def engine_stops(conform_runtime: ScenarioRuntime, seconds: float) -> None:
    conform_runtime.run(check_engine_stopped(conform_runtime.adapter, seconds))


@when("I ask the engine for its health", target_fixture="health_ready")
def ask_health(conform_runtime: ScenarioRuntime) -> bool:
    health = conform_runtime.run(conform_runtime.adapter.health())
    if not health.ready:
        raise CheckFailure("engine not ready", f"/health answered {health.status}: {health.detail}")
    return health.ready


@then("a completion request is admitted")
def request_admitted(conform_runtime: ScenarioRuntime) -> None:
    record = conform_runtime.stream(completion_request(conform_runtime, 4))
    if record.error is not None:
        raise CheckFailure("health lies", f"the engine reported ready, but a request failed: {record.error}")


@then("props report the context size and the slot count")
def props_reported(conform_runtime: ScenarioRuntime) -> None:
    props = conform_runtime.run(conform_runtime.adapter.props())
    if not props.ctx_max or props.ctx_max <= 0:
        raise CheckFailure("context size missing", f"props report ctx_max={props.ctx_max!r}")
    if not props.total_slots or props.total_slots <= 0:
        raise CheckFailure("slot count missing", f"props report total_slots={props.total_slots!r}")


@then("the engine reports its version and model")
def version_reported(conform_runtime: ScenarioRuntime) -> None:
    version = conform_runtime.run(conform_runtime.adapter.engine_version())
    if not version.version:
        raise CheckFailure("engine version missing", "the engine reports no version or build")
    if not version.model:
        raise CheckFailure("model missing", "the engine reports no model name")
