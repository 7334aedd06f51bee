"""Determinism steps: replay seeded requests through harness.determinism and judge them."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from conform.adapters import HttpAdapter, TaskRequest
from conform.harness.checks import CheckFailure
from conform.harness.determinism import Observation, builtin_corpus, describe_divergence, judge_request
from conform.harness.determinism.replay import Replica
from conform.harness.runtime import ScenarioRuntime
from conform.reports import RequestOutcome, describe_failure
from conform.stubs import load_script

from .engine_steps import script_dir

MAX_TOKENS = 16
SEED = 7


def _tasks(runtime: ScenarioRuntime, count: int) -> list[tuple[str, TaskRequest]]:
    return [
        (r.id, r.task(default_max_tokens=MAX_TOKENS, model=runtime.target.model)) for r in builtin_corpus(count, SEED)
    ]


def _judge(tasks: list[tuple[str, TaskRequest]], observations: list[Observation]) -> list[RequestOutcome]:
    return [judge_request(i, [o for o in observations if o.request_id == i], None, 0.0) for i, _ in tasks]


def _replica(number: int, adapter: HttpAdapter) -> Replica:
    return Replica(number, adapter, progress=lambda _line: None)


def _replay(
    runtime: ScenarioRuntime, replica: Replica, replay: Coroutine[Any, Any, list[Observation]]
) -> list[Observation]:
    """Run a replay, keeping its streams' timings (a failed stream is an observation the checks judge)."""
    try:
        return runtime.run(replay)
    finally:
        runtime.timings.extend(replica.timings)
        replica.timings.clear()


@pytest.fixture
def replicas() -> list[HttpAdapter]:
    """The adapters of the scenario's extra stub replicas (the target's own is conform_runtime.adapter)."""
    return []


@given(parsers.parse('a second replica that plays the "{name}" script'))
def second_replica(
    conform_runtime: ScenarioRuntime, replicas: list[HttpAdapter], request: pytest.FixtureRequest, name: str
) -> None:
    script = load_script(script_dir(request) / f"{name}.json")
    replicas.append(conform_runtime.add_stub_replica(script))


@when(parsers.parse("I send {count:d} seeded requests alone, {repeat:d} times each"), target_fixture="outcomes")
def send_alone(conform_runtime: ScenarioRuntime, count: int, repeat: int) -> list[RequestOutcome]:
    tasks = _tasks(conform_runtime, count)
    replica = _replica(0, conform_runtime.adapter)
    observations = _replay(conform_runtime, replica, replica.solo(tasks, repeat))
    return _judge(tasks, observations)


@when(parsers.parse("I send {count:d} seeded requests to both replicas alone"), target_fixture="outcomes")
def send_to_replicas(conform_runtime: ScenarioRuntime, replicas: list[HttpAdapter], count: int) -> list[RequestOutcome]:
    tasks = _tasks(conform_runtime, count)
    observations: list[Observation] = []
    for number, adapter in enumerate([conform_runtime.adapter, *replicas]):
        replica = _replica(number, adapter)
        observations += _replay(conform_runtime, replica, replica.solo(tasks, 1))
    return _judge(tasks, observations)


@when(
    parsers.parse("I send {count:d} seeded requests alone and under a load of {others:d} others"),
    target_fixture="outcomes",
)
def send_under_load(conform_runtime: ScenarioRuntime, count: int, others: int) -> list[RequestOutcome]:
    tasks = _tasks(conform_runtime, count)
    replica = _replica(0, conform_runtime.adapter)
    observations = _replay(conform_runtime, replica, replica.solo(tasks, 1))
    observations += _replay(conform_runtime, replica, replica.under_load(tasks, others, 1))
    return _judge(tasks, observations)


@then("every request gives identical tokens")
def all_identical(outcomes: list[RequestOutcome]) -> None:
    failed = [o for o in outcomes if o.failures]
    if failed:
        first = failed[0]
        raise CheckFailure(
            "request failed",
            f"{len(failed)} of {len(outcomes)} requests failed; {first.id}: {describe_failure(first.failures[0])}",
        )
    diverged = [o for o in outcomes if o.divergences]
    if diverged:
        first = diverged[0]
        where = describe_divergence(first.divergences[0])
        raise CheckFailure(
            "tokens diverged", f"{len(diverged)} of {len(outcomes)} requests diverged; {first.id}: {where}"
        )


@then("the load really overlapped")
def load_overlapped(outcomes: list[RequestOutcome]) -> None:
    alone = [o.id for o in outcomes if o.load_overlap == 0]
    if alone:
        raise CheckFailure("load not achieved", f"{', '.join(alone)} generated while no other request did")


@then(parsers.parse("the suite reports a {kind} divergence at token {index:d}"))
def reports_divergence_at(outcomes: list[RequestOutcome], kind: str, index: int) -> None:
    found = [d for o in outcomes for d in o.divergences if d.kind == kind]
    if not found:
        raise CheckFailure("divergence missed", f"the suite saw no {kind} divergence in {len(outcomes)} requests")
    wrong = [d for d in found if d.index != index]
    if wrong:
        raise CheckFailure(
            "divergence misplaced", f"expected token {index}, the suite named {describe_divergence(wrong[0])}"
        )


@then(parsers.parse("the suite reports a {kind} divergence"))
def reports_divergence(outcomes: list[RequestOutcome], kind: str) -> None:
    if not any(d.kind == kind for o in outcomes for d in o.divergences):
        raise CheckFailure("divergence missed", f"the suite saw no {kind} divergence in {len(outcomes)} requests")
