"""Steps of the conformance-depth features (limits, request errors). Thin: each calls a named check."""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from conform.harness.checks import check_max_tokens
from conform.harness.runtime import ScenarioRuntime
from conform.harness.stream import StreamRecord

from .engine_steps import completion_request

Budgets = list[tuple[int, StreamRecord]]


@when(parsers.parse("I stream completions of {first:d}, {second:d} and {third:d} tokens"), target_fixture="budgets")
def stream_budgets(conform_runtime: ScenarioRuntime, first: int, second: int, third: int) -> Budgets:
    return [(n, conform_runtime.stream(completion_request(conform_runtime, n))) for n in (first, second, third)]


@then("each streams exactly its budget unless the end names an earlier stop")
def each_streams_its_budget(budgets: Budgets) -> None:
    for budget, record in budgets:
        check_max_tokens(record, budget)
