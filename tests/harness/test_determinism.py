"""The determinism suite: its comparison core, corpus, and the CLI against stubs and real replicas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conform.harness.determinism import (
    BUILTIN,
    Completion,
    CorpusError,
    Observation,
    builtin_corpus,
    first_divergence,
    judge_request,
    load_corpus,
    load_golden,
)
from conform.reports import Slot, validate_report
from tests.helpers import RunningProcess, free_port, run_conform, start_llamacpp

# -- first divergence -------------------------------------------------------------------------------


def naive_first_divergence(a: list[int], b: list[int]) -> int | None:
    for index in range(max(len(a), len(b))):
        if index >= len(a) or index >= len(b) or a[index] != b[index]:
            return index
    return None


@given(st.lists(st.integers(0, 3), max_size=12), st.lists(st.integers(0, 3), max_size=12))
@example([1, 2], [1, 2, 3])
@example([], [])
def test_first_divergence_agrees_with_a_naive_scan(a: list[int], b: list[int]) -> None:
    assert first_divergence(a, b) == naive_first_divergence(a, b)


def completion(*ids: int) -> Completion:
    return Completion(tuple(ids), tuple(f" t{i}" for i in ids), tuple(-0.5 for _ in ids))


def observation(replica: int | None, mode: str, ids: tuple[int, ...], repeat: int = 0) -> Observation:
    return Observation("q", Slot(replica=replica, mode=mode, repeat=repeat), completion(*ids))


def test_judge_names_kind_slots_index_and_both_tokens() -> None:
    outcome = judge_request(
        "q",
        [
            observation(0, "solo", (1, 2, 3, 4)),
            observation(0, "load", (1, 2, 9, 4)),
            observation(1, "solo", (1, 2, 3, 4)),
        ],
        None,
        0.0,
    )
    assert outcome.verdict == "diverged"
    assert outcome.unique_completions == 2
    [divergence] = outcome.divergences
    assert divergence.kind == "load" and divergence.index == 2 and divergence.common_prefix == 2
    assert (divergence.a.mode, divergence.b.mode) == ("solo", "load")
    assert divergence.token_a is not None and divergence.token_a.id == 3
    assert divergence.token_b is not None and divergence.token_b.id == 9


def test_judge_compares_replicas_repeats_and_baseline() -> None:
    outcome = judge_request(
        "q",
        [
            observation(0, "solo", (1, 2, 3)),
            observation(0, "solo", (1, 2, 4), repeat=1),
            observation(1, "solo", (1, 5, 3)),
        ],
        observation(None, "baseline", (7, 2, 3)),
        0.0,
    )
    kinds = sorted((d.kind, d.index) for d in outcome.divergences)
    assert kinds == [("baseline", 0), ("baseline", 0), ("repeat", 2), ("replica", 1)]
    assert outcome.unique_completions == 4


def test_logprob_drift_is_separate_from_token_divergence() -> None:
    a = Observation("q", Slot(replica=0, mode="solo"), Completion((1, 2), (" a", " b"), (-0.5, -1.0)))
    b = Observation("q", Slot(replica=0, mode="load"), Completion((1, 2), (" a", " b"), (-0.5, -1.0000001)))
    bitwise = judge_request("q", [a, b], None, 0.0)
    assert bitwise.verdict == "identical"
    assert [(d.kind, d.index) for d in bitwise.logprob_drift] == [("load", 1)]
    assert judge_request("q", [a, b], None, 1e-3).logprob_drift == []


# -- corpus ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "prompt": "x"}'], ":1: field seed: Field required"),
        (['{"id": "a", "prompt": "x", "seed": 1, "temprature": 0}'], ":1: field temprature: unknown key"),
        (['{"id": "a", "seed": 1}'], ":1: field (line): Value error, exactly one of prompt or messages"),
        (['{"id": "a", "prompt": "x", "seed": 1}', "{oops"], ":2: not valid JSON"),
        (
            ['{"id": "a", "prompt": "x", "seed": 1}', '{"id": "a", "prompt": "y", "seed": 2}'],
            ":2: id 'a' repeats line 1",
        ),
        (["[1, 2]"], ":1: expected a JSON object, got list"),
        ([""], "the corpus has no requests"),
    ],
)
def test_malformed_corpus_names_line_and_field(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError) as raised:
        load_corpus(path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not text", "the golden file is not UTF-8 text"),
        (b'{"request": {"id": "a", "prompt": "x", "seed": 1}}\n', ":1: field engine_version: Field required"),
        (b"[]\n", ":1: expected a JSON object, got list"),
        (b"\n\n", "the golden file has no requests"),
    ],
)
def test_malformed_golden_file_names_line_and_field(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_bytes(content)
    with pytest.raises(CorpusError) as raised:
        load_golden(path)
    assert str(raised.value).startswith(str(path)) and message in str(raised.value)


def test_corpus_with_messages_loads(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"id": "q2", "messages": [{"role": "user", "content": "Hi"}], "seed": 1, "max_tokens": 32}\n')
    [request] = load_corpus(path)
    task = request.task(default_max_tokens=64, model=None)
    assert task.messages is not None and task.max_tokens == 32 and task.temperature == 0.0 and task.top_p == 1.0


def test_builtin_selection_is_deterministic_and_varied() -> None:
    assert builtin_corpus(8, seed=3) == builtin_corpus(8, seed=3)
    assert builtin_corpus(8, seed=3) != builtin_corpus(8, seed=4)
    many = builtin_corpus(len(BUILTIN) * 2 + 1, seed=1)
    assert len({r.id for r in many}) == len(many), "ids stay unique when prompts come round again"
    every = builtin_corpus(len(BUILTIN), seed=1)
    assert {r.temperature > 0 for r in every} == {True, False}, "greedy and sampled requests"
    assert any(not r.prompt.isascii() for r in every if r.prompt), "multilingual prompts"


# -- the CLI against stub replicas -----------------------------------------------------------------

PACE = {"token_delay_ms": 5}
"""Streams take long enough for requests under load to overlap in time."""


def determinism(*args: str) -> tuple[int, str, dict[str, Any] | None, str]:
    return _run(list(args))


def _run(args: list[str], report: Path | None = None) -> tuple[int, str, dict[str, Any] | None, str]:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        path = report or Path(scratch) / "report.json"
        result = run_conform(
            "determinism", "--engine", "llamacpp", *args, "--report", str(path), "--quiet", timeout=300
        )
        document = json.loads(path.read_text()) if path.exists() else None
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout, document, result.stderr


def test_two_good_replicas_are_identical(stub_process) -> None:
    a, b = stub_process(PACE), stub_process(PACE)
    code, out, report, _ = determinism("--url", a.url, "--url", b.url, "--requests", "3", "--max-tokens", "12")
    assert code == 0, out
    # Piped, as `run` does: no line for a request that has nothing to say, the summary first.
    assert out.startswith("3 requests: 3 identical, 0 diverged; 3 unique completions; modes solo, load, cache\n")
    assert report is not None
    validate_report(report)
    section = report["determinism"]
    assert section["summary"] == {
        "requests": 3,
        "identical": 3,
        "diverged": 0,
        "by_kind": {"replica": 0, "load": 0, "repeat": 0, "baseline": 0, "cache": 0},
        "unique_completions": 3,
        "logprob_drift": 0,
        "failed": 0,
        "failed_streams": 0,
    }
    assert section["modes"] == ["solo", "load", "cache"] and section["concurrency"] == 4
    assert report["reproduce"].startswith(f"conform determinism --engine llamacpp --url {a.url} --url {b.url}")
    assert all(r["load_overlap"] >= 1 for r in section["requests"]), "the load really overlapped"
    assert [r["url"] for r in section["replicas"]] == [a.url, b.url]
    for replica in section["replicas"]:
        assert {"seed", "temperature", "top_p", "top_k"} <= set(replica["sampler"]), "the sampler profile is recorded"


def test_verbose_lists_every_request(stub_process) -> None:
    a, b = stub_process(PACE), stub_process(PACE)
    args = ["--engine", "llamacpp", "--url", a.url, "--url", b.url, "--requests", "3", "--max-tokens", "4"]
    verbose = run_conform("determinism", *args, "--no-load", "-v", timeout=120)
    assert verbose.returncode == 0, verbose.stdout + verbose.stderr
    listed = [line for line in verbose.stdout.splitlines() if line.startswith("identical  ")]
    assert len(listed) == 3, verbose.stdout


def test_a_replica_diverging_at_token_5_is_named(stub_process) -> None:
    good, bad = stub_process(PACE), stub_process({**PACE, "determinism": {"diverge_at": 5}})
    code, out, report, _ = determinism("--url", good.url, "--url", bad.url, "--requests", "2", "--max-tokens", "12")
    assert code == 1
    assert report is not None
    first = report["determinism"]["requests"][0]
    divergence = next(d for d in first["divergences"] if d["kind"] == "replica")
    assert divergence["index"] == 5 and divergence["common_prefix"] == 5
    assert divergence["token_a"]["id"] != divergence["token_b"]["id"]
    a, b = divergence["token_a"], divergence["token_b"]
    assert f"differ at token 5: {a['id']} {a['text']!r} vs {b['id']} {b['text']!r}" in out
    assert "replica 0 solo vs replica 1 solo" in out


def test_negative_control_a_batch_variant_engine_diverges_under_load(stub_process) -> None:
    stub = stub_process({**PACE, "determinism": {"batch_variant_at": 3}})
    code, out, report, _ = determinism("--url", stub.url, "--requests", "3", "--max-tokens", "12", "--concurrency", "4")
    assert code == 1
    assert report is not None
    assert report["determinism"]["summary"]["by_kind"]["load"] == 3
    assert report["determinism"]["summary"]["by_kind"]["replica"] == 0
    assert "load: replica 0 solo vs replica 0 load differ at token 3" in out


def test_an_engine_ignoring_the_seed_diverges_on_repeat(stub_process) -> None:
    stub = stub_process({**PACE, "determinism": {"ignore_seed": True}})
    code, out, report, _ = determinism("--url", stub.url, "--requests", "2", "--repeat", "2", "--no-load")
    assert code == 1
    assert report is not None
    assert report["determinism"]["summary"]["by_kind"]["repeat"] == 2
    assert "repeat: replica 0 solo vs replica 0 solo #2 differ at token" in out


def test_mismatched_provenance_is_a_failed_check_before_any_comparison(stub_process) -> None:
    old, new = stub_process(PACE), stub_process({**PACE, "build": "b7000"})
    code, _, report, _ = determinism("--url", old.url, "--url", new.url)
    assert code == 1
    assert report is not None
    [result] = report["results"]
    assert result["id"] == "determinism.replica_mismatch" and result["status"] == "failed"
    assert "engine_version 'b7000'" in result["detail"]
    assert report["determinism"]["requests"] == []


def test_record_then_baseline(stub_process, tmp_path: Path) -> None:
    stub = stub_process(PACE)
    golden = tmp_path / "golden.jsonl"
    code, _, _, _ = determinism(
        "--url", stub.url, "--requests", "3", "--max-tokens", "10", "--no-load", "--record", str(golden)
    )
    assert code == 0
    lines = [json.loads(line) for line in golden.read_text().splitlines()]
    assert len(lines) == 3 and all(len(line["token_ids"]) == 10 for line in lines)
    assert lines[0]["engine_version"] == "b6000-conform-stub" and lines[0]["model_digest"]

    code, out, report, _ = determinism("--url", stub.url, "--baseline", str(golden), "--no-load")
    assert code == 0, out

    upgraded = stub_process({**PACE, "build": "b6001", "determinism": {"generator": "new sampler"}})
    code, out, report, _ = determinism("--url", upgraded.url, "--baseline", str(golden), "--no-load")
    assert code == 1
    assert report is not None
    drifted = [r["id"] for r in report["determinism"]["requests"] if r["verdict"] == "diverged"]
    assert drifted == [line["request"]["id"] for line in lines]
    for request_id in drifted:
        assert f"DIVERGED   {request_id}" in out
    assert "baseline: golden file vs replica 0 solo" in out


def test_golden_file_of_another_model_is_refused(stub_process, tmp_path: Path) -> None:
    stub = stub_process(PACE)
    golden = tmp_path / "golden.jsonl"
    determinism("--url", stub.url, "--requests", "1", "--no-load", "--record", str(golden))
    other = tmp_path / "other.jsonl"
    other.write_text(golden.read_text().replace('"model_digest":"meta-sha256:', '"model_digest":"meta-sha256:00'))
    code, _, report, err = determinism("--url", stub.url, "--baseline", str(other))
    assert code == 2 and report is None
    assert "recorded with model digest meta-sha256:00" in err and err.count("\n") <= 2


def test_logprob_drift_is_reported_but_tokens_decide(stub_process) -> None:
    a, b = stub_process(PACE), stub_process({**PACE, "determinism": {"logprob_jitter": 1e-7}})
    code, out, report, _ = determinism(
        "--url", a.url, "--url", b.url, "--requests", "4", "--no-load", "--no-prompt-cache"
    )
    assert code == 0, out
    assert report is not None
    assert report["determinism"]["summary"]["logprob_drift"] > 0
    assert "logprob drift (replica)" in out and "(tokens agree)" in out
    code, out, report, _ = determinism(
        "--url", a.url, "--url", b.url, "--requests", "4", "--no-load", "--no-prompt-cache", "--logprob-rtol", "0.01"
    )
    assert code == 0 and report is not None and report["determinism"]["summary"]["logprob_drift"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:{port}"], "cannot reach http://127.0.0.1:"),
        (["--url", "nonsense"], "bad URL 'nonsense'"),
        (["--url", "http://127.0.0.1:1", "--requests", "0"], "--requests must be from 1 to 100,000, got 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    args = [a.replace("{port}", str(free_port())) for a in args]
    code, _, report, err = _run(args)
    assert code == 2 and report is None
    lines = [line for line in err.splitlines() if line.startswith("conform: error:")]
    assert len(lines) == 1 and message in lines[0]


def test_malformed_corpus_line_is_exit_2(stub_process, tmp_path: Path) -> None:
    stub = stub_process(PACE)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "prompt": "x", "seed": 1}\n{"id": "b", "prompt": "y", "seed": "two"}\n')
    code, _, _, err = determinism("--url", stub.url, "--corpus", str(corpus))
    assert code == 2
    assert f"{corpus}:2: field seed" in err


# -- two real llama.cpp replicas -------------------------------------------------------------------


@pytest.fixture(scope="module")
def llamacpp_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningProcess, RunningProcess]]:
    """Two real servers, one thread each, so that two replicas share this machine's two cores fairly."""
    folder = tmp_path_factory.mktemp("replicas")
    first = start_llamacpp(folder / "a.log", threads=1)
    try:
        second = start_llamacpp(folder / "b.log", threads=1)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.mark.real_engine
def test_two_real_llamacpp_replicas(llamacpp_replicas, tmp_path: Path) -> None:
    """Solo streams agree across replicas and repeats; what load does is reported, not asserted."""
    a, b = llamacpp_replicas
    code, out, report, err = determinism(
        "--url", a.url, "--url", b.url, "--requests", "3", "--max-tokens", "24", "--concurrency", "2", "--repeat", "2"
    )
    assert report is not None, err
    validate_report(report)
    section = report["determinism"]
    assert section["replicas"][0]["model"] == "gemma-3-270m-q4_k_m"
    assert section["replicas"][0]["sampler"]["samplers"], "llama.cpp reports its sampler chain"
    kinds = section["summary"]["by_kind"]
    assert kinds["replica"] == 0, f"solo streams must agree across replicas: {out}"
    assert kinds["repeat"] == 0 or all(
        d["a"]["mode"] != "solo" for r in section["requests"] for d in r["divergences"] if d["kind"] == "repeat"
    ), f"seeded solo repeats on one server must agree: {out}"
    assert code == (1 if section["summary"]["diverged"] else 0)
    print(out)  # the measured under-load and cache behaviour, for the CI log


def test_a_stream_that_fails_under_load_loses_no_other_comparison(stub_process) -> None:
    """llama-cpp-python's server ends a running stream as soon as another request arrives: every load stream
    fails, each is reported for its request, and every solo comparison is still made and counted."""
    stub = stub_process({**PACE, "faults": [{"kind": "abandon_under_load"}]})
    code, out, report, _ = determinism(
        "--url", stub.url, "--requests", "3", "--max-tokens", "40", "--repeat", "2", "--concurrency", "2",
        "--no-prompt-cache",
    )  # fmt: skip
    assert code == 1 and report is not None, out
    section = report["determinism"]
    assert section["summary"]["requests"] == 3 and section["summary"]["failed"] == 3
    assert section["summary"]["failed_streams"] == 6, "the load stream and one burst copy of every request, named"
    for outcome in section["requests"]:
        assert outcome["verdict"] == "identical" and outcome["divergences"] == [], "the two solo runs agree"
        # Under load, and the first of the two identical copies sent at once (the second arrived while it ran).
        assert [(f["slot"]["mode"], f["kind"]) for f in outcome["failures"]] == [
            ("load", "protocol_violation"),
            ("burst", "protocol_violation"),
        ]
        assert "the stream ended without the final stop:true frame" in outcome["failures"][0]["detail"]
    results = {r["id"]: r for r in report["results"] if r["id"] != "determinism.load_overlap"}
    assert len(results) == 3 and all(r["status"] == "failed" for r in results.values())
    assert all(r["detail"].startswith("replica 0 load failed: protocol_violation: ") for r in results.values())
    assert "3 requests: 3 identical, 0 diverged" in out and "3 with a failed stream (6 streams)" in out
    assert out.count(" failed: protocol_violation: ") == 6, "a line per failed stream, under its request"


def test_a_request_that_fails_alone_is_named_and_the_others_compared(stub_process) -> None:
    stub = stub_process({**PACE, "faults": [{"kind": "status", "status": 400, "message": "boom", "times": 1}]})
    code, out, report, _ = determinism(
        "--url", stub.url, "--requests", "2", "--max-tokens", "8", "--repeat", "2", "--no-load", "--no-prompt-cache"
    )
    assert code == 1 and report is not None, out
    first, second = report["determinism"]["requests"]
    assert [(f["slot"]["mode"], f["slot"]["repeat"], f["kind"]) for f in first["failures"]] == [
        ("solo", 0, "invalid_request")
    ]
    assert second["failures"] == [] and second["verdict"] == "identical"


def test_identical_requests_count_each_completion_and_place_each_divergence() -> None:
    from conform.harness.determinism.compare import BURST, identical_requests

    def burst(n: int, ids: tuple[int, ...]) -> Observation:
        return Observation("q", Slot(replica=0, mode=BURST, repeat=n), Completion(ids, tuple(map(str, ids)), ()))

    streams = [burst(0, (1, 2, 3, 4)), burst(1, (1, 2, 9, 9)), burst(2, (1, 2, 3, 4)), burst(3, (7, 2, 3, 4))]
    streams += [burst(4, (1, 2, 3, 4)), burst(5, (1, 2, 9, 9))]
    figures, divergence = identical_requests(streams, concurrency=3)
    assert [(g.count, g.text) for g in figures.completions] == [(3, "1234"), (2, "1299"), (1, "7234")]
    assert figures.divergence_positions == [2, 0, 2]
    assert (figures.divergence_min, figures.divergence_median, figures.divergence_max) == (0, 2, 2)
    assert divergence is not None and (divergence.kind, divergence.index, divergence.b.repeat) == ("repeat", 2, 1)
    same, none = identical_requests([burst(0, (1,)), burst(1, (1,))], concurrency=2)
    assert [g.count for g in same.completions] == [2] and same.divergence_positions == [] and none is None


def test_the_experiment_counts_unique_completions_of_identical_requests(stub_process) -> None:
    """--repeat N --concurrency K: a stub that ignores the seed gives N completions of N identical requests; the
    well-behaved stub gives one."""
    for script, unique in (({**PACE, "determinism": {"ignore_seed": True}}, 6), (PACE, 1)):
        stub = stub_process(script)
        code, out, report, _ = determinism(
            "--url", stub.url, "--requests", "1", "--repeat", "6", "--concurrency", "3", "--max-tokens", "8",
            "--no-prompt-cache",
        )  # fmt: skip
        assert report is not None and (code == 1 or unique == 1), out  # six completions are a divergence
        figures = report["determinism"]["requests"][0]["identical_requests"]
        assert (figures["requests"], figures["concurrency"]) == (6, 3)
        assert sorted(g["count"] for g in figures["completions"]) == sorted([6 // unique] * unique)
        assert len(figures["divergence_positions"]) == 6 - max(g["count"] for g in figures["completions"])
        assert f"burst: 6 identical requests, 3 at once: {unique} unique" in out
        assert "burst" in report["determinism"]["modes"]


@pytest.mark.parametrize(("engine", "noted"), [("responses", True), ("anthropic", True), ("llamacpp", False)])
def test_a_wire_without_a_seed_says_its_sampled_requests_go_unseeded(stub_process, engine: str, noted: bool) -> None:
    """The built-in corpus samples 3 of its first 8 requests; a wire that carries no seed sends them unseeded,
    which the run says before any divergence could be taken for the engine's."""
    stub = stub_process(None, engine)
    result = run_conform("determinism", "--engine", engine, "--url", stub.url, "--requests", "8", "--no-load")
    assert result.returncode == 0, result.stdout + result.stderr
    note = (
        f"conform: note: the {engine} wire carries no seed: 3 of the 8 requests sample (temperature above 0) "
        "unseeded, so a divergence among them is expected, not a determinism bug"
    )
    assert (note in result.stderr) is noted, result.stderr
