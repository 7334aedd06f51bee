"""Steps of the conformance-depth features. Thin: each calls a named check (harness/checks.py)."""

from __future__ import annotations

import pytest
from pytest_bdd import parsers, then, when

from conform.adapters import Capability, RetryPolicy
from conform.harness.auth import AuthAnswers, auth_answers, check_auth_required
from conform.harness.checks import (
    check_counters_rose,
    check_logprobs,
    check_max_tokens,
    check_prompt_tokens,
    check_seed_matters,
    check_stop_sequence,
    check_top_k_1_is_greedy,
    check_utf8_integrity,
)
from conform.harness.load import (
    HealthProbe,
    Overload,
    QueuedCancel,
    check_health_under_load,
    check_overload,
    check_queued_cancel,
    health_while_generating,
    kept_busy,
    overload,
    queued_cancel,
    slots_of,
    until_idle,
)
from conform.harness.request_errors import (
    Refusal,
    check_refused_as_invalid,
    check_unknown_model,
    send_not_json,
    send_unknown_model,
    send_wrong_type,
)
from conform.harness.runtime import ScenarioRuntime
from conform.harness.stream import StreamRecord
from conform.harness.wires import WireAnswer, check_wires_agree, through_each_wire

from .engine_steps import PROMPT, completion_request

Budgets = list[tuple[int, StreamRecord]]


@when(parsers.parse("I stream completions of {first:d}, {second:d} and {third:d} tokens"), target_fixture="budgets")
def stream_budgets(conform_runtime: ScenarioRuntime, first: int, second: int, third: int) -> Budgets:
    return [(n, conform_runtime.stream(completion_request(conform_runtime, n))) for n in (first, second, third)]


@then("each streams exactly its budget unless the end names an earlier stop")
def each_streams_its_budget(budgets: Budgets) -> None:
    for budget, record in budgets:
        check_max_tokens(record, budget)


@when("I send a generation request whose body is not JSON", target_fixture="refusal")
def send_body_not_json(conform_runtime: ScenarioRuntime) -> tuple[Refusal, str | None]:
    adapter = conform_runtime.adapter
    return conform_runtime.run(send_not_json(adapter, completion_request(conform_runtime, 8))), None


@when("I send a generation request whose token budget is a string", target_fixture="refusal")
def send_budget_as_string(conform_runtime: ScenarioRuntime) -> tuple[Refusal, str | None]:
    adapter = conform_runtime.adapter
    return conform_runtime.run(send_wrong_type(adapter, completion_request(conform_runtime, 8)))


@when("I send a generation request for a model the engine does not serve", target_fixture="refusal")
def send_for_unknown_model(conform_runtime: ScenarioRuntime) -> tuple[Refusal, str | None]:
    adapter = conform_runtime.adapter
    return conform_runtime.run(send_unknown_model(adapter, completion_request(conform_runtime, 4)))


@then("it is refused, or served by a model that says which it is")
def unknown_model_refused_or_named(refusal: tuple[Refusal, str | None]) -> None:
    check_unknown_model(*refusal)


@then("it is refused as an invalid request, not a server error")
def refused_as_invalid(refusal: tuple[Refusal, str | None]) -> None:
    check_refused_as_invalid(refusal[0], "a body that is not JSON")


@then("it is refused as an invalid request whose message names the parameter")
def refused_naming_parameter(refusal: tuple[Refusal, str | None]) -> None:
    answer, parameter = refusal
    check_refused_as_invalid(answer, f'{parameter}: "ten" (a string where a number belongs)', parameter)


@then("the usage's prompt token count is what the engine's tokenizer counts for that prompt")
def prompt_tokens_match_the_tokenizer(conform_runtime: ScenarioRuntime, stream: StreamRecord) -> None:
    counted = conform_runtime.run(conform_runtime.adapter.count_prompt_tokens(stream.request))
    check_prompt_tokens(stream, counted)


MULTILINGUAL_PROMPTS = (
    "日本の首都は",
    "中文：我今天很高兴，因为",
    "Café, crème brûlée, déjà vu, naïve:",
    "Emoji list: 🌊 🐟 🐚 ",
)
"""Prompts a model continues in Japanese, Chinese, accented Latin and emoji: characters of 2 to 4 UTF-8 bytes."""


@when("I stream completions of prompts in Japanese, Chinese, accented French and emoji", target_fixture="texts")
def stream_multilingual(conform_runtime: ScenarioRuntime) -> list[StreamRecord]:
    return [conform_runtime.stream(completion_request(conform_runtime, 24, p)) for p in MULTILINGUAL_PROMPTS]


@then("no piece holds U+FFFD, and the pieces join to the text the engine gives whole and reads back from the ids")
def text_streams_whole(conform_runtime: ScenarioRuntime, texts: list[StreamRecord]) -> None:
    adapter, supported = conform_runtime.adapter, conform_runtime.profile.supported
    reads_ids = {Capability.DETOKENIZE, Capability.TOKEN_IDS} <= supported
    for record in texts:
        whole = conform_runtime.run(adapter.complete(record.request))
        ids = [t.token_id for t in record.tokens if t.token_id is not None]
        detokenized = conform_runtime.run(adapter.detokenize(ids)) if reads_ids and ids else None
        check_utf8_integrity(record, whole, detokenized)


SEEDS = [1, 2, 3]


@when(
    parsers.parse("I stream a completion of {count:d} tokens greedily and again at temperature 1 with top_k 1"),
    target_fixture="pair",
)
def stream_greedy_and_top_k_1(conform_runtime: ScenarioRuntime, count: int) -> tuple[StreamRecord, StreamRecord]:
    greedy = completion_request(conform_runtime, count)
    sampled = greedy.model_copy(update={"temperature": 1.0, "top_k": 1})
    return conform_runtime.stream(greedy), conform_runtime.stream(sampled)


@then("both give the same tokens")
def both_give_the_same_tokens(pair: tuple[StreamRecord, StreamRecord]) -> None:
    check_top_k_1_is_greedy(*pair)


@when(
    parsers.parse("I stream a completion of {count:d} tokens at temperature 1 with seeds 1, 2 and 3"),
    target_fixture="seeded",
)
def stream_three_seeds(conform_runtime: ScenarioRuntime, count: int) -> list[StreamRecord]:
    request = completion_request(conform_runtime, count)
    return [conform_runtime.stream(request.model_copy(update={"temperature": 1.0, "seed": s})) for s in SEEDS]


@then("the completions are not all the same")
def completions_differ(seeded: list[StreamRecord]) -> None:
    check_seed_matters(seeded, SEEDS)


Probes = tuple[list[HealthProbe], int]


@when("I ask for health three times while every slot is generating", target_fixture="probes")
def health_while_every_slot_generates(conform_runtime: ScenarioRuntime) -> Probes:
    adapter = conform_runtime.adapter
    streams = conform_runtime.run(slots_of(adapter))
    request = completion_request(conform_runtime, 256)
    return conform_runtime.run(health_while_generating(adapter, request, streams)), streams


@then(parsers.parse("health answers ready within {seconds:g} second each time"))
def health_answers_in_time(probes: Probes, seconds: float) -> None:
    if not kept_busy(*probes):
        pytest.skip("the engine finished its 256-token generations before health was asked: no load to judge")
    check_health_under_load(probes[0], probes[1], seconds)


StopRun = tuple[StreamRecord, StreamRecord, str]


def stop_within_a_token(greedy: StreamRecord) -> str:
    """A whole token of the greedy text, from its fourth token on (so that something comes before it)."""
    return next(t.text for t in greedy.tokens[3:] if t.text.strip() and len(t.text) >= 2)


def stop_across_tokens(greedy: StreamRecord) -> str:
    """The last two characters of one token and the first two of the next, from the fourth token on."""
    pairs = zip(greedy.tokens[3:], greedy.tokens[4:], strict=False)
    first, second = next((a, b) for a, b in pairs if len(a.text) >= 2 and len(b.text) >= 2)
    return first.text[-2:] + second.text[:2]


STOP_CHOICES = {"is one of its tokens": stop_within_a_token, "spans two of its tokens": stop_across_tokens}


@when(
    parsers.parse(
        "I stream a greedy completion of {count:d} tokens, then the same request with a stop string that {choice}"
    ),
    target_fixture="stop_run",
)
def stream_with_a_stop(conform_runtime: ScenarioRuntime, count: int, choice: str) -> StopRun:
    request = completion_request(conform_runtime, count)
    greedy = conform_runtime.stream(request)
    check_max_tokens(greedy, count)  # a greedy run that failed has no text to take a stop string from
    stop = STOP_CHOICES[choice](greedy)
    return greedy, conform_runtime.stream(request.model_copy(update={"stop": (stop,)})), stop


@then("the output is the greedy text cut before the stop string, without it, and the end says stop")
def output_cut_at_stop(stop_run: StopRun) -> None:
    check_stop_sequence(*stop_run)


Counted = tuple[dict[str, float], dict[str, float], dict[str, float]]


def served_by(streams: list[StreamRecord]) -> dict[str, float]:
    """What `streams` had the engine do, by what its counters count: their usage, else the tokens streamed."""
    prompt = sum(s.end.usage.prompt_tokens or 0 for s in streams if s.end and s.end.usage)
    generated = sum(len(s.tokens) for s in streams)
    return {"prompt_tokens": prompt, "generated_tokens": generated, "requests": len(streams)}


@when(parsers.parse("I read the metrics, stream {count:d} completions, and read them again"), target_fixture="counted")
def read_serve_read(conform_runtime: ScenarioRuntime, count: int) -> Counted:
    adapter = conform_runtime.adapter
    conform_runtime.run(until_idle(adapter))  # what an earlier check left running would be counted too
    before = conform_runtime.run(adapter.metrics())
    streams = [conform_runtime.stream(completion_request(conform_runtime, 8, f"{PROMPT} ({n})")) for n in range(count)]
    for stream in streams:
        check_max_tokens(stream, 8)  # only streams that completed count as served
    conform_runtime.run(until_idle(adapter))
    after = conform_runtime.run(adapter.metrics())
    served = {what: amount for what, amount in served_by(streams).items() if what in adapter.metrics_counters}
    return before, after, served


@then("each counter of what was served rose by exactly that")
def counters_rose(counted: Counted) -> None:
    check_counters_rose(*counted)


@when("I stream a completion without the API key, with a wrong one, and with the right one", target_fixture="auth")
def stream_with_each_key(conform_runtime: ScenarioRuntime) -> AuthAnswers:
    return conform_runtime.run(auth_answers(conform_runtime.adapter, completion_request(conform_runtime, 4)))


@then("only the right key is served, the others are refused with 401 or 403, and public health stays public")
def only_the_right_key(auth: AuthAnswers) -> None:
    check_auth_required(auth)


@when(
    parsers.parse("I send {times:d} times as many requests as the engine has slots, all at once"), target_fixture="load"
)
def send_overload(conform_runtime: ScenarioRuntime, times: int) -> Overload:
    adapter = conform_runtime.adapter
    slots = conform_runtime.run(slots_of(adapter, fallback=2))
    once = adapter.replaced(retry=RetryPolicy.none())  # a refusal is what is looked at: no retry hides it
    try:
        return conform_runtime.run(overload(once, completion_request(conform_runtime, 16), times * slots))
    finally:
        conform_runtime.run(once.aclose())


@then("each completes or is refused as retriable, none hangs, and the engine is idle and healthy afterwards")
def overload_handled(load: Overload) -> None:
    check_overload(load)


@when("I fill every slot, then give up on one more request while it waits for a slot", target_fixture="queued")
def give_up_on_a_queued_request(conform_runtime: ScenarioRuntime) -> QueuedCancel:
    adapter = conform_runtime.adapter
    slots = conform_runtime.run(slots_of(adapter))
    return conform_runtime.run(queued_cancel(adapter, completion_request(conform_runtime, 256), slots))


@then("no slot starts generating for it once the slots are free")
def queued_request_never_runs(queued: QueuedCancel) -> None:
    check_queued_cancel(queued)


@when(
    parsers.parse("I send the same greedy request of {count:d} tokens through each wire the server speaks"),
    target_fixture="wires",
)
def same_request_each_wire(conform_runtime: ScenarioRuntime, count: int) -> list[list[WireAnswer]]:
    return conform_runtime.run(through_each_wire(conform_runtime.adapter, PROMPT, count))


@then("every wire gives the same text")
def every_wire_agrees(wires: list[list[WireAnswer]]) -> None:
    check_wires_agree(wires)


Listed = tuple[StreamRecord, int, list[float]]


@when(
    parsers.parse(
        "I stream a greedy completion of {count:d} tokens listing the {listed:d} most likely tokens at each "
        "position, and ask for it whole"
    ),
    target_fixture="listed",
)
def stream_with_top_logprobs(conform_runtime: ScenarioRuntime, count: int, listed: int) -> Listed:
    request = completion_request(conform_runtime, count).model_copy(update={"logprobs": True, "top_logprobs": listed})
    stream = conform_runtime.stream(request)
    return stream, listed, conform_runtime.run(conform_runtime.adapter.whole_logprobs(request))


@then("the log-probabilities are at most 0, listed in descending order led by the chosen token, and the same whole")
def logprobs_consistent(listed: Listed) -> None:
    check_logprobs(*listed)
