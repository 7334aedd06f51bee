"""The conformance-depth checks: each passes on the well-behaved stub of every engine, and fails, with a
detail a vendor can act on, on a stub scripted to violate it (its negative control)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conform.adapters import (
    AdapterOptions,
    Capability,
    End,
    ErrorKind,
    Health,
    RetryPolicy,
    Started,
    TaskRequest,
    Timeouts,
    Token,
    WorkerError,
    create_adapter,
    engines,
)
from conform.features.steps.conformance_steps import (
    MULTILINGUAL_PROMPTS,
    served_by,
    stop_across_tokens,
    stop_within_a_token,
)
from conform.harness import load
from conform.harness.auth import AuthAnswers, auth_answers, check_auth_required
from conform.harness.checks import (
    CheckFailure,
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
)
from conform.harness.request_errors import (
    Refusal,
    check_refused_as_invalid,
    check_unknown_model,
    send_not_json,
    send_unknown_model,
    send_wrong_type,
)
from conform.harness.stream import StreamRecord, collect
from conform.harness.wires import WireAnswer, check_wires_agree, through_each_wire
from conform.stubs import Script, StubServer
from conform.stubs.script import (
    AcceptAnyKeyFault,
    ClaimAnyModelFault,
    LeakStopFault,
    MisreportInvalidFault,
    MisreportLogprobsFault,
    MisreportUsageFault,
    OverrunFault,
    SplitCharactersFault,
    StaleMetricsFault,
    WireDriftFault,
)
from tests.harness.test_checks import record, tokens
from tests.helpers import STUB_OPTIONS

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


ENDS_SAY_WHY = [name for name, engine in engines().items() if Capability.END_MARKER in engine.capabilities]
"""The engines whose last frame says it is the last, and why generation stopped (Triton's stream just ends)."""


async def _collected(engine: str, script: Script, max_tokens: int) -> StreamRecord:
    """One seeded greedy stream of `max_tokens` from `engine`'s stub playing `script`."""
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, STUB_OPTIONS)
        try:
            return await collect(adapter, TaskRequest(prompt=PROMPT, max_tokens=max_tokens, seed=42))
        finally:
            await adapter.aclose()


# -- limits.max_tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENDS_SAY_WHY)
async def test_max_tokens_holds_on_every_well_behaved_stub(engine: str) -> None:
    for budget in (1, 7, 32):
        check_max_tokens(await _collected(engine, Script(), budget), budget)


@pytest.mark.parametrize("engine", ENDS_SAY_WHY)
async def test_max_tokens_fails_on_a_stub_that_streams_one_token_too_many(engine: str) -> None:
    stream = await _collected(engine, Script(faults=(OverrunFault(kind="overrun"),)), 7)
    with pytest.raises(CheckFailure) as failed:
        check_max_tokens(stream, 7)
    assert failed.value.title == "more tokens than max_tokens"
    assert failed.value.detail.startswith("max_tokens 7 streamed 8 tokens (1 too many)")


@pytest.mark.parametrize(
    ("streamed", "reason", "title", "detail"),
    [
        (4, "stop", "budget reached but not said", "all 4 tokens of max_tokens 4 streamed, but the finish reason is"),
        (2, "length", "length claimed before the budget", "max_tokens 4: the finish reason is 'length' after only 2"),
    ],
)
def test_max_tokens_names_a_finish_reason_that_lies(streamed: int, reason: str, title: str, detail: str) -> None:
    stream = record(Started("t", 0.0), *tokens(*range(streamed)), End(reason, None, 0.0))
    with pytest.raises(CheckFailure) as failed:
        check_max_tokens(stream, 4)
    assert failed.value.title == title and failed.value.detail.startswith(detail)


def test_max_tokens_accepts_an_early_stop_that_says_so() -> None:
    check_max_tokens(record(Started("t", 0.0), *tokens(0, 1), End("stop", None, 0.0)), 4)


# -- errors.malformed_body, errors.invalid_param ----------------------------------------------------

ANSWER_WHOLE = [name for name, engine in engines().items() if Capability.NON_STREAMING in engine.capabilities]
"""The engines with a non-streamed generation request, which the request-error checks break."""


async def _refusals(engine: str, script: Script) -> tuple[Refusal, Refusal, str]:
    """How `engine`'s stub playing `script` answers a body that is not JSON, and a budget that is a string."""
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(timeouts=Timeouts(total=10.0)))
        request = TaskRequest(prompt=PROMPT, max_tokens=8, seed=42)
        try:
            not_json = await send_not_json(adapter, request)
            wrong_type, parameter = await send_wrong_type(adapter, request)
        finally:
            await adapter.aclose()
    return not_json, wrong_type, parameter


@pytest.mark.parametrize("engine", ANSWER_WHOLE)
async def test_request_errors_hold_on_every_well_behaved_stub(engine: str) -> None:
    not_json, wrong_type, parameter = await _refusals(engine, Script())
    check_refused_as_invalid(not_json, "a body that is not JSON")
    check_refused_as_invalid(wrong_type, "a string budget", parameter)


@pytest.mark.parametrize("engine", ANSWER_WHOLE)
async def test_request_errors_fail_on_a_stub_that_answers_them_with_500(engine: str) -> None:
    not_json, wrong_type, parameter = await _refusals(
        engine, Script(faults=(MisreportInvalidFault(kind="misreport_invalid"),))
    )
    for answer, what in ((not_json, "a body that is not JSON"), (wrong_type, "a string budget")):
        with pytest.raises(CheckFailure) as failed:
            check_refused_as_invalid(answer, what, parameter)
        assert failed.value.title == "a client's mistake answered as a server error"
        assert failed.value.detail.startswith(f"{what} was answered 500")
        assert "answer 400 (or 422) saying what is wrong" in failed.value.detail


@pytest.mark.parametrize("engine", ANSWER_WHOLE)
async def test_invalid_param_fails_on_a_stub_whose_refusal_names_nothing(engine: str) -> None:
    fault = MisreportInvalidFault(kind="misreport_invalid", status=400, message="Bad Request")
    _, wrong_type, parameter = await _refusals(engine, Script(faults=(fault,)))
    with pytest.raises(CheckFailure) as failed:
        check_refused_as_invalid(wrong_type, "a string budget", parameter)
    assert failed.value.title == "the refusal does not name the parameter"
    assert f"does not name {parameter!r}" in failed.value.detail


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        (Refusal(200, None, '{"content": "Hello"}'), "an invalid request was served"),
        (Refusal(404, ErrorKind.NOT_FOUND, "no model in the request"), "invalid request refused as something else"),
    ],
)
def test_request_errors_name_a_request_served_or_refused_as_something_else(answer: Refusal, title: str) -> None:
    with pytest.raises(CheckFailure) as failed:
        check_refused_as_invalid(answer, "a body that is not JSON")
    assert failed.value.title == title and failed.value.detail.startswith("a body that is not JSON was answered")


# -- usage.prompt_tokens ----------------------------------------------------------------------------

TOKENIZERS = [name for name, engine in engines().items() if Capability.TOKENIZE in engine.capabilities]
"""The engines whose adapter can ask the engine's own tokenizer."""


async def _usage_and_count(engine: str, script: Script) -> tuple[StreamRecord, int]:
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(timeouts=Timeouts(total=10.0)))
        request = TaskRequest(prompt=PROMPT, max_tokens=4, seed=42)
        try:
            return await collect(adapter, request), await adapter.count_prompt_tokens(request)
        finally:
            await adapter.aclose()


def test_the_tokenizers_are_llamacpp_and_anthropic() -> None:
    assert TOKENIZERS == ["llamacpp", "anthropic"]


@pytest.mark.parametrize("engine", TOKENIZERS)
async def test_prompt_tokens_hold_on_every_well_behaved_stub(engine: str) -> None:
    stream, counted = await _usage_and_count(engine, Script())
    assert counted == len(PROMPT.split()), "the stub's tokenizer counts a token per word"
    check_prompt_tokens(stream, counted)


@pytest.mark.parametrize("engine", TOKENIZERS)
@pytest.mark.parametrize("offset", [1, -2])
async def test_prompt_tokens_fail_on_a_stub_whose_usage_miscounts(engine: str, offset: int) -> None:
    script = Script(faults=(MisreportUsageFault(kind="misreport_usage", prompt_tokens=offset),))
    stream, counted = await _usage_and_count(engine, script)
    with pytest.raises(CheckFailure) as failed:
        check_prompt_tokens(stream, counted)
    assert failed.value.title == "usage disagrees with the tokenizer"
    assert failed.value.detail.startswith(
        f"the usage reports {counted + offset} prompt tokens, the engine's own tokenizer counts {counted}"
    )


def test_prompt_tokens_fail_without_a_count() -> None:
    with pytest.raises(CheckFailure) as failed:
        check_prompt_tokens(record(Started("t", 0.0), *tokens(0), End("stop", None, 0.0)), 5)
    assert failed.value.title == "no prompt token count"


# -- text.utf8_integrity -----------------------------------------------------------------------------


async def _multilingual(engine: str, script: Script, prompt: str) -> tuple[StreamRecord, str, str | None]:
    """A stream of `prompt`, the same request's whole text, and the stream's ids read back (where it can)."""
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(timeouts=Timeouts(total=10.0)))
        request = TaskRequest(prompt=prompt, max_tokens=24, seed=42)
        try:
            stream = await collect(adapter, request)
            ids = [t.token_id for t in stream.tokens if t.token_id is not None]
            reads_ids = Capability.DETOKENIZE in adapter.capabilities and ids
            return stream, await adapter.complete(request), await adapter.detokenize(ids) if reads_ids else None
        finally:
            await adapter.aclose()


@pytest.mark.parametrize("engine", ANSWER_WHOLE)
async def test_utf8_integrity_holds_on_every_well_behaved_stub(engine: str) -> None:
    for prompt in MULTILINGUAL_PROMPTS:
        stream, whole, detokenized = await _multilingual(engine, Script(), prompt)
        check_utf8_integrity(stream, whole, detokenized)
        assert not stream.text.isascii() or engine == "echo", "the stub answers a prompt in another script in kind"
        assert detokenized is None or engine == "llamacpp"


@pytest.mark.parametrize("engine", ANSWER_WHOLE)
async def test_utf8_integrity_fails_on_a_stub_that_splits_a_character(engine: str) -> None:
    script = Script(faults=(SplitCharactersFault(kind="split_characters"),))
    stream, whole, detokenized = await _multilingual(engine, script, "日本の首都は")
    with pytest.raises(CheckFailure) as failed:
        check_utf8_integrity(stream, whole, detokenized)
    assert failed.value.title == "U+FFFD in the stream"
    assert "\ufffd" in failed.value.detail and "hold an incomplete character back" in failed.value.detail


def test_utf8_integrity_names_ids_that_read_back_as_other_text() -> None:
    stream = record(Started("t", 0.0), Token(0, " café", 101, 0.0), End("stop", None, 0.0))
    check_utf8_integrity(stream, " café", " café")
    with pytest.raises(CheckFailure) as failed:
        check_utf8_integrity(stream, " café", " cafe")
    assert failed.value.title == "token ids read back as other text"
    with pytest.raises(CheckFailure) as failed:
        check_utf8_integrity(stream, " caf")
    assert failed.value.title == "streamed text differs from the complete text"


# -- sampling.greedy_is_top_k_1, sampling.seed_matters ---------------------------------------------


def _with(*needed: Capability) -> list[str]:
    return [name for name, engine in engines().items() if set(needed) <= engine.capabilities]


async def _sampled(engine: str, script: Script, *requests: TaskRequest) -> list[StreamRecord]:
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(timeouts=Timeouts(total=10.0)))
        try:
            return [await collect(adapter, request) for request in requests]
        finally:
            await adapter.aclose()


GREEDY = TaskRequest(prompt=PROMPT, max_tokens=24, seed=42)
TOP_K_1 = GREEDY.model_copy(update={"temperature": 1.0, "top_k": 1})
SEEDED = [GREEDY.model_copy(update={"temperature": 1.0, "seed": seed}) for seed in (1, 2, 3)]


@pytest.mark.parametrize("engine", _with(Capability.TOP_K, Capability.SAMPLING))
async def test_top_k_1_is_greedy_on_every_well_behaved_stub(engine: str) -> None:
    check_top_k_1_is_greedy(*await _sampled(engine, Script(), GREEDY, TOP_K_1))


@pytest.mark.parametrize("engine", _with(Capability.TOP_K, Capability.SAMPLING))
async def test_top_k_1_fails_on_a_stub_that_ignores_top_k(engine: str) -> None:
    script = Script.model_validate({"determinism": {"ignore_top_k": True}})
    greedy, sampled = await _sampled(engine, script, GREEDY, TOP_K_1)
    with pytest.raises(CheckFailure) as failed:
        check_top_k_1_is_greedy(greedy, sampled)
    assert failed.value.title == "top_k 1 is not greedy"
    assert failed.value.detail.startswith("at token 0, greedy gave ")
    assert "with one candidate left, sampling must pick the most likely token" in failed.value.detail


@pytest.mark.parametrize("engine", _with(Capability.SEED, Capability.SAMPLING))
async def test_seeds_matter_on_every_well_behaved_stub(engine: str) -> None:
    check_seed_matters(await _sampled(engine, Script(), *SEEDED), [1, 2, 3])


@pytest.mark.parametrize("engine", _with(Capability.SEED, Capability.SAMPLING))
async def test_seeds_matter_fails_on_a_stub_that_ignores_the_seed(engine: str) -> None:
    streams = await _sampled(engine, Script.model_validate({"determinism": {"fixed_seed": True}}), *SEEDED)
    with pytest.raises(CheckFailure) as failed:
        check_seed_matters(streams, [1, 2, 3])
    assert failed.value.title == "the seed changes nothing"
    assert failed.value.detail.startswith("temperature 1 with seeds 1, 2, 3 gave the same 24 tokens each time")


def test_the_echo_engine_does_not_sample() -> None:
    assert "echo" not in _with(Capability.SAMPLING) and len(_with(Capability.SAMPLING)) == len(engines()) - 1


# -- errors.unknown_model ----------------------------------------------------------------------------

NAMED = _with(Capability.NAMED_MODELS, Capability.NON_STREAMING)
"""The engines whose requests name a model and whose answers say which answered."""


async def _unknown_model(engine: str, script: Script) -> tuple[Refusal, str | None]:
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(timeouts=Timeouts(total=10.0)))
        try:
            return await send_unknown_model(adapter, TaskRequest(prompt=PROMPT, max_tokens=4, seed=42))
        finally:
            await adapter.aclose()


@pytest.mark.parametrize("engine", NAMED)
async def test_unknown_model_holds_on_every_well_behaved_stub(engine: str) -> None:
    answer, answered_by = await _unknown_model(engine, Script())
    check_unknown_model(answer, answered_by)
    assert answer.kind is not None or answered_by == "stub-model", "refused, or served by the stub's own model"


@pytest.mark.parametrize("engine", [name for name in NAMED if name != "llamaswap"])  # it routes by model first
async def test_unknown_model_fails_on_a_stub_that_serves_it_in_its_name(engine: str) -> None:
    answer, answered_by = await _unknown_model(engine, Script(faults=(ClaimAnyModelFault(kind="claim_any_model"),)))
    with pytest.raises(CheckFailure) as failed:
        check_unknown_model(answer, answered_by)
    assert failed.value.title == "an unknown model was served in its name"
    assert "refuse it (404) or name the model that answered" in failed.value.detail


@pytest.mark.parametrize(
    ("answer", "answered_by", "title"),
    [
        (Refusal(200, None, "{}"), None, "an unknown model was served without saying by which"),
        (Refusal(500, ErrorKind.ENGINE_ERROR, "boom"), None, "a client's mistake answered as a server error"),
        (Refusal(401, ErrorKind.AUTH, "no key"), None, "unknown model refused as something else"),
    ],
)
def test_unknown_model_names_each_wrong_answer(answer: Refusal, answered_by: str | None, title: str) -> None:
    with pytest.raises(CheckFailure) as failed:
        check_unknown_model(answer, answered_by)
    assert failed.value.title == title


# -- health.under_load -------------------------------------------------------------------------------

PACED = {"token_delay_ms": 20}
"""A stub that takes its time, so that its slots stay busy while health is asked."""


async def _probes(engine: str, script: Script, probes: int) -> tuple[list[HealthProbe], int]:
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(timeouts=Timeouts(total=30.0)))
        try:
            streams = await slots_of(adapter)
            request = TaskRequest(prompt=PROMPT, max_tokens=256, seed=42)
            return await health_while_generating(adapter, request, streams, probes=probes), streams
        finally:
            await adapter.aclose()


@pytest.mark.parametrize("engine", _with(Capability.HEALTH))
async def test_health_under_load_holds_on_every_well_behaved_stub(engine: str) -> None:
    probes, streams = await _probes(engine, Script.model_validate(PACED), 3)
    assert streams == 2, "the stubs' two slots (props), or the fallback"
    check_health_under_load(probes, streams)


@pytest.mark.parametrize("engine", _with(Capability.HEALTH))
async def test_health_under_load_fails_on_a_stub_whose_health_waits_behind_generation(engine: str) -> None:
    script = Script.model_validate({**PACED, "faults": [{"kind": "slow_under_load", "delay_ms": 2500}]})
    probes, streams = await _probes(engine, script, 1)
    with pytest.raises(CheckFailure) as failed:
        check_health_under_load(probes, streams)
    assert failed.value.title == "health is slow under load"
    assert failed.value.detail.startswith("health took 2.")
    assert "while 2 slots were generating (limit 1 s)" in failed.value.detail


def test_health_under_load_has_nothing_to_judge_when_the_generations_ended_first() -> None:
    assert not kept_busy([HealthProbe(0.01, Health(ready=True), 1)], 2)
    assert kept_busy([HealthProbe(0.01, Health(ready=True), 2)], 2)


@pytest.mark.parametrize(
    ("probe", "title"),
    [
        (HealthProbe(0.01, Health(ready=False, status=503, detail="Loading model"), 2), "health says not ready"),
        (HealthProbe(10.0, None, 2), "health is slow under load"),
    ],
)
def test_health_under_load_names_each_wrong_answer(probe: HealthProbe, title: str) -> None:
    with pytest.raises(CheckFailure) as failed:
        check_health_under_load([probe], 2)
    assert failed.value.title.startswith(title)


# -- stop.sequence, stop.across_tokens ---------------------------------------------------------------


async def _stopped(engine: str, script: Script, choose: Callable[[StreamRecord], str]) -> tuple[StreamRecord, ...]:
    """A greedy stream, and the same request with a stop string `choose` takes from it."""
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, AdapterOptions(timeouts=Timeouts(total=10.0)))
        try:
            greedy = await collect(adapter, GREEDY)
            stop = choose(greedy)
            return greedy, await collect(adapter, GREEDY.model_copy(update={"stop": (stop,)})), stop
        finally:
            await adapter.aclose()


@pytest.mark.parametrize("choose", [stop_within_a_token, stop_across_tokens])
@pytest.mark.parametrize("engine", _with(Capability.STOP))
async def test_stop_holds_on_every_well_behaved_stub(engine: str, choose: Callable[[StreamRecord], str]) -> None:
    greedy, stopped, stop = await _stopped(engine, Script(), choose)
    check_stop_sequence(greedy, stopped, stop)
    assert 0 < len(stopped.text) < len(greedy.text), "the stop string cut the output short"


@pytest.mark.parametrize("choose", [stop_within_a_token, stop_across_tokens])
@pytest.mark.parametrize("engine", _with(Capability.STOP))
async def test_stop_fails_on_a_stub_that_leaks_the_stop_string(
    engine: str, choose: Callable[[StreamRecord], str]
) -> None:
    greedy, stopped, stop = await _stopped(engine, Script(faults=(LeakStopFault(kind="leak_stop"),)), choose)
    with pytest.raises(CheckFailure) as failed:
        check_stop_sequence(greedy, stopped, stop)
    assert failed.value.title == "the stop string leaked"
    assert failed.value.detail.startswith(f"the stop string {stop!r} is in the output at character")


def test_stop_names_an_output_cut_elsewhere_and_a_finish_reason_that_is_not_stop() -> None:
    greedy = record(
        Started("t", 0.0),
        *(Token(i, w, None, 0.0) for i, w in enumerate([" a", " b", " c", " d"])),
        End("length", None, 0.0),
    )
    early = record(Started("t", 0.0), Token(0, " a", None, 0.0), End("stop", None, 0.0))
    with pytest.raises(CheckFailure) as failed:
        check_stop_sequence(greedy, early, " c")
    assert failed.value.title == "the output is not the greedy text cut at the stop string"
    unsaid = record(Started("t", 0.0), Token(0, " a", None, 0.0), Token(1, " b", None, 0.0), End("length", None, 0.0))
    with pytest.raises(CheckFailure) as failed:
        check_stop_sequence(greedy, unsaid, " c")
    assert failed.value.title == "the end does not say stop"


# -- metrics.consistent ------------------------------------------------------------------------------


async def _counted(script: Script) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    async with StubServer("llamacpp", script) as stub:
        adapter = create_adapter("llamacpp", stub.url, AdapterOptions(timeouts=Timeouts(total=10.0)))
        try:
            before = await adapter.metrics()
            streams = [await collect(adapter, GREEDY.model_copy(update={"prompt": f"{PROMPT} {n}"})) for n in range(3)]
            after = await adapter.metrics()
        finally:
            await adapter.aclose()
    served = {what: amount for what, amount in served_by(streams).items() if what in adapter.metrics_counters}
    return before, after, served


def test_the_metrics_are_llamacpp_s() -> None:
    assert _with(Capability.METRICS) == ["llamacpp"]


async def test_counters_rise_by_what_a_well_behaved_stub_served() -> None:
    before, after, served = await _counted(Script())
    assert served == {"prompt_tokens": 3 * (len(PROMPT.split()) + 1), "generated_tokens": 3 * 24}
    check_counters_rose(before, after, served)


async def test_counters_fail_on_a_stub_whose_metrics_never_rise() -> None:
    before, after, served = await _counted(Script(faults=(StaleMetricsFault(kind="stale_metrics"),)))
    with pytest.raises(CheckFailure) as failed:
        check_counters_rose(before, after, served)
    assert failed.value.title == "the metrics do not count what was served"
    assert failed.value.detail.startswith("the counter of prompt tokens rose by 0 while 48 were served")


def test_counters_name_a_counter_that_is_missing() -> None:
    with pytest.raises(CheckFailure) as failed:
        check_counters_rose({"generated_tokens": 0.0}, {"generated_tokens": 5.0}, {"prompt_tokens": 9.0})
    assert failed.value.title == "a counter is missing"


# -- auth.required -----------------------------------------------------------------------------------

STUB_KEY = "sk-stub-key-0123456789"


async def _auth(engine: str, script: Script) -> AuthAnswers:
    async with StubServer(engine, script) as stub:
        options = AdapterOptions(timeouts=Timeouts(total=10.0), api_key=STUB_KEY, retry=RetryPolicy.none())
        adapter = create_adapter(engine, stub.url, options)
        try:
            return await auth_answers(adapter, TaskRequest(prompt=PROMPT, max_tokens=4, seed=42))
        finally:
            await adapter.aclose()


@pytest.mark.parametrize("engine", list(engines()))
async def test_auth_holds_on_every_well_behaved_stub_with_a_key(engine: str) -> None:
    answers = await _auth(engine, Script(api_key=STUB_KEY))
    check_auth_required(answers)
    assert (answers.health_without_key is not None) == (engine == "llamacpp"), "llama.cpp documents /health public"


@pytest.mark.parametrize("engine", list(engines()))
async def test_auth_fails_on_a_stub_that_serves_any_key(engine: str) -> None:
    answers = await _auth(engine, Script(api_key=STUB_KEY, faults=(AcceptAnyKeyFault(kind="accept_any_key"),)))
    with pytest.raises(CheckFailure) as failed:
        check_auth_required(answers)
    if engine == "llamaswap":  # it sends the placeholder key "no-key" when it has none: a wrong key, served
        assert failed.value.detail.startswith("a request without a key was served")
    else:
        assert failed.value.detail.startswith("a request with a wrong key was served")
    assert failed.value.title == "served without the right key"
    assert STUB_KEY not in str(failed.value)


def test_auth_names_a_refusal_with_the_wrong_status_and_a_refused_right_key() -> None:
    refused = record(error=WorkerError(ErrorKind.ENGINE_ERROR, "boom", status=500))
    unauthorized = record(error=WorkerError(ErrorKind.AUTH, "Invalid API Key", status=401))
    served = record(Started("t", 0.0), *tokens(0, 1), End("stop", None, 0.0))
    with pytest.raises(CheckFailure) as failed:
        check_auth_required(AuthAnswers(refused, unauthorized, served, None))
    assert failed.value.title == "refused with the wrong status" and "answered 500" in failed.value.detail
    with pytest.raises(CheckFailure) as failed:
        check_auth_required(AuthAnswers(unauthorized, unauthorized, unauthorized, None))
    assert failed.value.title == "the right key was refused"
    with pytest.raises(CheckFailure) as failed:
        check_auth_required(AuthAnswers(unauthorized, unauthorized, served, Health(ready=False, status=401)))
    assert failed.value.title == "public health needs a key"


# -- admission.overload ------------------------------------------------------------------------------


async def _overloaded(engine: str, script: Script, total: float = 10.0) -> Overload:
    """8 requests at once (4 times the stubs' 2 slots), each tried once."""
    async with StubServer(engine, script) as stub:
        options = AdapterOptions(timeouts=Timeouts(total=total), retry=RetryPolicy.none())
        adapter = create_adapter(engine, stub.url, options)
        try:
            return await overload(adapter, TaskRequest(prompt=PROMPT, max_tokens=16, seed=42), 8)
        finally:
            await adapter.aclose()


@pytest.mark.parametrize("engine", list(engines()))
async def test_overload_holds_on_every_well_behaved_stub(engine: str) -> None:
    result = await _overloaded(engine, Script.model_validate(PACED))
    check_overload(result)
    assert len(result.streams) == 8 and all(s.error is None for s in result.streams), "the stub queues nothing away"


@pytest.mark.parametrize("engine", list(engines()))
async def test_overload_fails_on_a_stub_that_answers_500_when_its_slots_are_busy(engine: str) -> None:
    script = Script.model_validate({**PACED, "faults": [{"kind": "overload", "status": 500}]})
    with pytest.raises(CheckFailure) as failed:
        check_overload(await _overloaded(engine, script))
    assert failed.value.title == "overload answered as an error"
    assert "sent at once failed: engine_error (HTTP 500)" in failed.value.detail
    assert "refuse it with 429 or 503 (with retry-after), never fail it" in failed.value.detail


async def test_overload_fails_on_a_stub_that_hangs_when_its_slots_are_busy() -> None:
    script = Script.model_validate({**PACED, "faults": [{"kind": "overload", "status": None}]})
    with pytest.raises(CheckFailure) as failed:
        check_overload(await _overloaded("llamacpp", script, total=1.0))
    assert failed.value.title == "a request hung under load"
    assert "deadline_unmet" in failed.value.detail and "queue it and answer" in failed.value.detail


async def test_overload_accepts_refusals_a_client_retries() -> None:
    script = Script.model_validate({**PACED, "faults": [{"kind": "overload", "status": 503}]})
    result = await _overloaded("llamacpp", script)
    check_overload(result)
    refused = [s.error for s in result.streams if s.error is not None]
    assert refused and all(e.kind is ErrorKind.UPSTREAM_UNAVAILABLE and e.status == 503 for e in refused)


# -- cancel.queued -----------------------------------------------------------------------------------

QUEUEING = {"token_delay_ms": 20, "queue": True}
"""A stub that generates on its 2 slots at most, so a third request waits; 256 tokens take it 5 s."""


async def _queued(script: Script) -> QueuedCancel:
    async with StubServer("llamacpp", script) as stub:
        adapter = create_adapter("llamacpp", stub.url, AdapterOptions(timeouts=Timeouts(total=30.0)))
        try:
            request = TaskRequest(prompt=PROMPT, max_tokens=256, seed=42)
            return await queued_cancel(adapter, request, await slots_of(adapter))
        finally:
            await adapter.aclose()


def test_queued_cancel_is_llamacpp_s() -> None:
    assert _with(Capability.ENGINE_SIDE_CANCEL, Capability.PROPS) == ["llamacpp"]


async def test_queued_cancel_holds_on_a_well_behaved_queueing_stub() -> None:
    result = await _queued(Script.model_validate(QUEUEING))
    check_queued_cancel(result)
    assert result.busy_after == 0


async def test_queued_cancel_fails_on_a_stub_that_runs_a_request_whose_client_left_in_the_queue() -> None:
    script = Script.model_validate({**QUEUEING, "faults": [{"kind": "run_cancelled_queued"}]})
    with pytest.raises(CheckFailure) as failed:
        check_queued_cancel(await _queued(script))
    assert failed.value.title == "a cancelled queued request ran"
    counted = len(PROMPT.split())  # the stub's tokenizer: a token per word
    assert failed.value.detail.startswith(
        "a request whose client left while it waited for a slot took one once slots were free ("
        f"the engine's counter of evaluated prompt tokens rose by {counted}"
    )
    assert "the engine must drop a queued request whose client is gone" in failed.value.detail


def test_queued_cancel_without_a_counter_judges_by_the_busy_slots_it_saw() -> None:
    check_queued_cancel(QueuedCancel(0, 2.0))
    with pytest.raises(CheckFailure) as failed:
        check_queued_cancel(QueuedCancel(1, 2.0))
    assert (
        "took one once slots were free (1 slot took it within 2 s after every client had gone)" in failed.value.detail
    )


async def _attempted(monkeypatch: pytest.MonkeyPatch, *seen: QueuedCancel) -> tuple[QueuedCancel, int]:
    """queued_cancel over attempts that see `seen` in turn; what it returns, and how many attempts it made."""
    results = iter(seen)
    made: list[QueuedCancel] = []

    async def once(*_: object) -> QueuedCancel:
        made.append(next(results))
        return made[-1]

    monkeypatch.setattr(load, "_queued_cancel_once", once)
    return await queued_cancel(None, TaskRequest(prompt=PROMPT), 2), len(made)  # type: ignore[arg-type]


async def test_queued_cancel_repeats_a_clean_attempt_and_names_the_one_that_saw_it_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether an engine notices a gone client before a slot frees is a race: a clean attempt is tried again, up
    to the limit, and the detail names the attempt that saw the request run."""
    clean, ran = QueuedCancel(0, 2.0), QueuedCancel(1, 2.0)
    result, made = await _attempted(monkeypatch, clean, ran, clean)
    assert (made, result.attempt, result.attempts) == (2, 2, 3)
    with pytest.raises(CheckFailure) as failed:
        check_queued_cancel(result)
    assert "after every client had gone) (in attempt 2 of 3): the engine must drop" in failed.value.detail
    result, made = await _attempted(monkeypatch, clean, clean, clean)
    assert (made, result.ran, result.attempt) == (3, False, 3)
    check_queued_cancel(result)


# -- equivalence.wires -------------------------------------------------------------------------------


async def _wires(script: Script) -> list[list[WireAnswer]]:
    async with StubServer("llamacpp", script) as stub:
        adapter = create_adapter("llamacpp", stub.url, AdapterOptions(timeouts=Timeouts(total=10.0)))
        try:
            return await through_each_wire(adapter, PROMPT, 24)
        finally:
            await adapter.aclose()


def test_only_llamacpp_speaks_other_wires() -> None:
    assert _with(Capability.OTHER_WIRES) == ["llamacpp"]


async def test_wires_agree_on_the_well_behaved_llamacpp_stub() -> None:
    groups = await _wires(Script())
    assert [[a.wire for a in group] for group in groups] == [
        ["llamacpp prompt", "openai prompt"],
        ["openai chat", "anthropic chat", "responses chat"],
    ]
    check_wires_agree(groups)


async def test_wires_fail_on_a_stub_whose_other_wires_answer_from_another_stream() -> None:
    with pytest.raises(CheckFailure) as failed:
        check_wires_agree(await _wires(Script(faults=(WireDriftFault(kind="wire_drift"),))))
    assert failed.value.title == "two wires answer the same request differently"
    assert failed.value.detail.startswith("llamacpp prompt and openai prompt differ at character")


def test_wires_need_two_to_compare() -> None:
    with pytest.raises(CheckFailure) as failed:
        check_wires_agree([])
    assert failed.value.title == "no two wires to compare"


# -- logprobs.consistent -----------------------------------------------------------------------------

LISTED = GREEDY.model_copy(update={"logprobs": True, "top_logprobs": 3, "max_tokens": 16})


async def _listed(script: Script) -> tuple[StreamRecord, list[float]]:
    async with StubServer("llamacpp", script) as stub:
        adapter = create_adapter("llamacpp", stub.url, AdapterOptions(timeouts=Timeouts(total=10.0)))
        try:
            return await collect(adapter, LISTED), await adapter.whole_logprobs(LISTED)
        finally:
            await adapter.aclose()


def test_top_logprobs_are_llamacpp_s() -> None:
    assert _with(Capability.TOP_LOGPROBS) == ["llamacpp"]


async def test_logprobs_hold_on_the_well_behaved_stub() -> None:
    stream, whole = await _listed(Script())
    check_logprobs(stream, 3, whole)
    assert all(len(t.top) == 3 for t in stream.tokens) and len(whole) == 16


@pytest.mark.parametrize(
    ("how", "title"),
    [
        ("unsorted", "the top list is not sorted"),
        ("positive", "a log-probability above 0"),
        ("short", "the top list has the wrong length"),
        ("drift", "streamed and whole log-probabilities differ"),
    ],
)
async def test_logprobs_fail_on_a_stub_that_misreports_them(how: str, title: str) -> None:
    stream, whole = await _listed(Script(faults=(MisreportLogprobsFault(kind="misreport_logprobs", how=how),)))
    with pytest.raises(CheckFailure) as failed:
        check_logprobs(stream, 3, whole)
    assert failed.value.title == title
    assert failed.value.detail.startswith("token 0")


def test_logprobs_name_a_greedy_choice_that_is_not_the_top_1() -> None:
    token = Token(0, " b", 2, 0.0, -1.0, ((1, " a", -0.5), (2, " b", -1.0), (3, " c", -2.0)))
    stream = record(Started("t", 0.0), token, End("length", None, 0.0))
    with pytest.raises(CheckFailure) as failed:
        check_logprobs(stream, 3, [-1.0])
    assert failed.value.title == "greedy did not choose the most likely token"
