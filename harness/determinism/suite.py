"""The determinism suite: provenance, replay across replicas and modes, verdicts, golden files, report."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conform.adapters import (
    Capability,
    EngineVersion,
    ErrorKind,
    HttpAdapter,
    ProxyConfig,
    TaskRequest,
    WorkerError,
    create_adapter,
)
from conform.reports import (
    ByKind,
    CapabilitySummary,
    CheckResult,
    CorpusInfo,
    DeterminismSection,
    DeterminismSummary,
    ReplicaInfo,
    Report,
    RequestOutcome,
    Slot,
    TargetInfo,
    atomic_writer,
    describe_divergence,
    describe_failure,
    utc_now,
    write_atomic,
)
from conform.reports.model import PROVENANCE
from conform.reports.provenance import versioned

from ..progress import Eta
from ..runtime import adapter_options, transcript_name
from ..targets import Target
from ..timing import summarize_latency
from .compare import BURST, Observation, judge_request
from .corpus import CorpusError, CorpusRequest, builtin_corpus, load_corpus
from .golden import GoldenLine, golden_line, golden_provenance, load_golden
from .replay import Replica

__all__ = ["SuiteOptions", "TargetUnreachable", "describe_divergence", "run_suite"]


class TargetUnreachable(Exception):
    """A replica that cannot be reached at all: bad input, not a finding."""


@dataclass(frozen=True)
class SuiteOptions:
    engine: str
    urls: Sequence[str]
    model: str | None = None
    api_key_env: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 5.0
    insecure: bool = False
    ca_bundle: str | None = None
    transcripts: Path | None = None
    """A folder for a redacted NDJSON transcript per request and replica (--transcripts)."""
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    request_extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields added to every generation request (--request-extra)."""
    engine_versions: Sequence[str] = ()
    """--engine-version: a declared label for every replica, or one per URL in order."""
    corpus: Path | None = None
    requests: int = 8
    seed: int = 1
    concurrency: int = 4
    max_tokens: int = 64
    repeat: int = 1
    record: Path | None = None
    baseline: Path | None = None
    logprob_rtol: float = 0.0
    prompt_cache: bool = True
    """Compare prompt cache on vs off where the engine lets a request choose."""
    reproduce: str = ""
    modes: tuple[str, ...] = field(default=("solo", "load"))
    exitfirst: bool = False
    """Stop after the first request that diverges or has a failed stream (-x)."""


def _check_result(
    check_id: str, scenario: str, engine: str, status: str, detail: str | None, duration: float = 0.0
) -> CheckResult:
    return CheckResult(
        id=check_id,
        feature="determinism",
        scenario=scenario,
        engine=engine,
        level="core",
        status=status,  # type: ignore[arg-type]
        duration_s=duration,
        detail=detail,
    )


def _provenance(url: str, version: EngineVersion, declared: str | None) -> ReplicaInfo:
    return ReplicaInfo(
        url=url,
        **versioned(version.version, declared).model_dump(),
        model=version.model,
        model_digest=version.model_digest,
    )


def _declared_versions(options: SuiteOptions) -> list[str | None]:
    """--engine-version: one label for every replica, or one per --url in order."""
    labels = list(options.engine_versions)
    if len(labels) in (0, 1):
        return [labels[0] if labels else None] * len(options.urls)
    return [*labels]


def _mismatch(replicas: Sequence[ReplicaInfo]) -> str | None:
    first = replicas[0]
    for number, other in enumerate(replicas[1:], start=1):
        for name in ("engine_version", "model", "model_digest"):
            a, b = getattr(first, name), getattr(other, name)
            if a is not None and b is not None and a != b:  # an unknown proves nothing either way
                return (
                    f"replica {number} ({other.url}) reports {name} {b!r}, replica 0 ({first.url}) reports {a!r}: "
                    "comparing their tokens would be meaningless"
                )
    return None


async def _connect(options: SuiteOptions) -> list[HttpAdapter]:
    adapters = []
    for url in options.urls:
        target = Target(
            engine=options.engine,
            url=url,
            model=options.model,
            api_key_env=options.api_key_env,
            timeout=options.timeout,
            connect_timeout=options.connect_timeout,
            insecure=options.insecure,
            ca_bundle=options.ca_bundle,
            proxy=options.proxy,
            request_extra=dict(options.request_extra),
        )
        keep = options.transcripts is not None
        adapters.append(create_adapter(options.engine, url, adapter_options(target, transcript=keep)))
    return adapters


async def _versions(adapters: Sequence[HttpAdapter], declared: Sequence[str | None]) -> list[ReplicaInfo]:
    infos = []
    for adapter, label in zip(adapters, declared, strict=True):
        try:
            infos.append(_provenance(adapter.base_url, await adapter.engine_version(), label))
        except WorkerError as error:
            if error.kind is ErrorKind.UPSTREAM_UNAVAILABLE and error.status is None:
                raise TargetUnreachable(f"cannot reach {adapter.base_url}: {error.message}") from None
            raise
    return infos


def _corpus(options: SuiteOptions, golden: Sequence[GoldenLine] | None) -> tuple[list[CorpusRequest], CorpusInfo]:
    if golden is not None:
        requests = [line.request for line in golden]
        return requests, CorpusInfo(source=str(options.baseline), requests=len(requests), seed=None)
    if options.corpus is not None:
        requests = load_corpus(options.corpus)
        return requests, CorpusInfo(source=str(options.corpus), requests=len(requests), seed=None)
    requests = builtin_corpus(options.requests, options.seed)
    return requests, CorpusInfo(source="builtin", requests=len(requests), seed=options.seed)


def _unseeded(requests: Sequence[CorpusRequest], capabilities: frozenset[Capability], engine: str) -> str | None:
    """A note for a wire that carries no seed (Anthropic's, the Responses API): its sampled requests go
    unseeded, so they may diverge whatever the engine does; None where nothing samples or the seed is sent."""
    sampled = sum(1 for r in requests if r.temperature > 0)
    if Capability.SEED in capabilities or not sampled:
        return None
    return (
        f"conform: note: the {engine} wire carries no seed: {sampled} of the {len(requests)} requests sample "
        "(temperature above 0) unseeded, so a divergence among them is expected, not a determinism bug; a corpus "
        "of greedy requests (--corpus FILE with temperature 0) judges only what this wire can repeat"
    )


def _check_golden_digest(golden: Sequence[GoldenLine], replica: ReplicaInfo, path: Path) -> None:
    recorded = golden[0].model_digest
    if recorded is not None and replica.model_digest is not None and recorded != replica.model_digest:
        raise CorpusError(
            f"{path}: recorded with model digest {recorded}, but {replica.url} serves {replica.model_digest}: "
            "a golden file only validates an engine upgrade on the same model"
        )


def _result(outcome: RequestOutcome, engine: str, duration: float) -> CheckResult:
    """A request's result: failed on any failed stream (each named) or divergence among the streams that
    completed."""
    problems = [describe_failure(f) for f in outcome.failures]
    if outcome.divergences:
        extra = len(outcome.divergences) - 1
        problems.append(describe_divergence(outcome.divergences[0]) + (f" (+{extra} more)" if extra else ""))
    detail = "; ".join(problems) or None
    status = "failed" if problems else "passed"
    return _check_result(
        f"determinism.{outcome.id}",
        "a seeded request gives the same tokens everywhere",
        engine,
        status,
        detail,
        duration,
    )


def _load_result(outcomes: Sequence[RequestOutcome], engine: str) -> CheckResult | None:
    unloaded = [o.id for o in outcomes if o.load_overlap == 0]
    if not any(o.load_overlap is not None for o in outcomes):
        return None
    detail = None
    if unloaded:
        detail = (
            f"under load, {', '.join(unloaded)} generated with no other request generating at the same time: "
            "the load comparison proves nothing for them (raise --concurrency or --max-tokens)"
        )
    status = "error" if unloaded else "passed"
    return _check_result(
        "determinism.load_overlap", "the load mode really runs requests concurrently", engine, status, detail
    )


def _write_transcripts(folder: Path, request_id: str, adapters: Sequence[HttpAdapter]) -> None:
    """One file per request and replica, written as soon as the request is judged (memory stays flat)."""
    for number, adapter in enumerate(adapters):
        transcript = adapter.options.transcript
        if transcript is not None and len(transcript):
            write_atomic(folder / transcript_name(request_id, f"replica{number}"), transcript.drain())


class _Stopped(Exception):
    """Raised inside the golden file's block when the run was asked to stop: a partial golden file is discarded."""


async def run_suite(
    options: SuiteOptions,
    progress: Callable[[str], None],
    stop: Callable[[], bool] = lambda: False,
    golden: Sequence[GoldenLine] | None = None,
) -> Report:
    """Replay the corpus and judge it. `stop` is polled between requests: once it says so, or with
    `options.exitfirst` once a request diverged, the run ends with the requests judged so far, marked
    interrupted (and no golden file, which would be missing requests). `golden` is the lines of
    `options.baseline` where the caller has read them already (read here otherwise)."""
    started_at = utc_now()
    loop = asyncio.get_running_loop()
    began = loop.time()
    adapters = await _connect(options)
    try:
        replicas = await _versions(adapters, _declared_versions(options))
        if golden is None and options.baseline is not None:
            golden = load_golden(options.baseline)
        recorded = None
        if golden is not None and options.baseline is not None:
            _check_golden_digest(golden, replicas[0], options.baseline)
            recorded = golden_provenance(options.baseline, golden)
        requests, corpus_info = _corpus(options, golden)
        # Resolve defaults now, so a golden file records exactly what was asked.
        requests = [r if r.max_tokens else r.model_copy(update={"max_tokens": options.max_tokens}) for r in requests]
        capabilities = adapters[0].capabilities
        unseeded = _unseeded(requests, capabilities, options.engine)
        if unseeded is not None:
            progress(unseeded)
        modes = list(options.modes)
        if options.repeat > 1 and "load" in modes:
            modes.append(BURST)  # N identical copies, K at once: the unique-completions experiment
        if options.prompt_cache and Capability.PROMPT_CACHE_CONTROL in capabilities and "cache" not in modes:
            modes.append("cache")
        section = DeterminismSection(
            corpus=corpus_info,
            modes=modes,
            concurrency=options.concurrency,
            repeat=options.repeat,
            replicas=replicas,
            summary=DeterminismSummary(requests=0, identical=0, diverged=0, by_kind=ByKind()),
            requests=[],
            sampler={
                "default_max_tokens": options.max_tokens,
                "cache_prompt": False,
                "logprobs": Capability.LOGPROBS in capabilities,
            },
            logprob_rtol=options.logprob_rtol,
            baseline=recorded,
        )
        mismatch = _mismatch(replicas)
        if mismatch is not None:
            result = _check_result(
                "determinism.replica_mismatch",
                "replicas run the same engine build and model",
                options.engine,
                "failed",
                mismatch,
                loop.time() - began,
            )
            return _report(options, started_at, replicas, [result], section)
        logprobs = Capability.LOGPROBS in capabilities
        tasks = [
            (r.id, r.task(default_max_tokens=options.max_tokens, model=options.model, logprobs=logprobs))
            for r in requests
        ]
        players = [Replica(n, adapter, progress) for n, adapter in enumerate(adapters)]
        baseline = {line.request.id: line.observation() for line in golden} if golden else {}
        outcomes = []
        stopped = False
        with contextlib.suppress(_Stopped), contextlib.ExitStack() as stack:
            record = stack.enter_context(atomic_writer(options.record)) if options.record is not None else None
            eta = Eta(len(tasks), loop.time)
            if options.transcripts is not None:
                _write_transcripts(options.transcripts, "probe", adapters)  # the version and props asked first
            for position, request in enumerate(requests):
                if stop():
                    stopped = True
                    raise _Stopped
                # One request at a time, every mode and replica, then judged: what is kept of it is its
                # outcome, never its tokens, so a corpus of any size runs in the same memory.
                observations = await _replay(players, tasks, position, modes, options)
                if record is not None:
                    first = next(o for o in observations if o.slot == Slot(replica=0, mode="solo", repeat=0))
                    record.write(golden_line(request, first, replicas[0]).model_dump_json() + "\n")
                outcomes.append(
                    judge_request(
                        request.id, observations, baseline.get(request.id), options.logprob_rtol, options.concurrency
                    )
                )
                if options.transcripts is not None:
                    _write_transcripts(options.transcripts, request.id, adapters)
                progress(eta.line(position + 1, request.id))
                bad = outcomes[-1].verdict != "identical" or bool(outcomes[-1].failures)
                if options.exitfirst and bad and position + 1 < len(requests):
                    stopped = True
                    raise _Stopped
        section.replicas = [r.model_copy(update={"sampler": p.sampler}) for r, p in zip(replicas, players, strict=True)]
        duration = (loop.time() - began) / max(1, len(outcomes))
        results = [_result(o, options.engine, duration) for o in outcomes]
        load_result = _load_result(outcomes, options.engine)
        if load_result is not None:
            results.append(load_result)
        section.requests = outcomes
        section.summary = _summary(outcomes)
        return _report(options, started_at, replicas, results, section, players, interrupted=stopped)
    finally:
        for adapter in adapters:
            await adapter.aclose()


async def _replay(
    replicas: Sequence[Replica],
    tasks: Sequence[tuple[str, TaskRequest]],
    position: int,
    modes: Sequence[str],
    options: SuiteOptions,
) -> list[Observation]:
    """The request at `position` on every replica at once (they are separate servers); within a replica, mode
    after mode. Under load, the others in flight are the requests after it in the corpus."""
    task = [tasks[position]]

    async def one(replica: Replica) -> list[Observation]:
        observed = await replica.solo(task, options.repeat)
        if "load" in modes:
            observed += await replica.under_load(task, options.concurrency, 1, corpus=tasks)
        if BURST in modes:
            observed += await replica.burst(task, options.repeat, options.concurrency)
        if "cache" in modes:
            observed += await replica.with_prompt_cache(task)
        return observed

    per_replica = await asyncio.gather(*(one(r) for r in replicas))
    return [o for observed in per_replica for o in observed]


def _summary(outcomes: Sequence[RequestOutcome]) -> DeterminismSummary:
    by_kind = ByKind()
    for outcome in outcomes:
        for kind in {d.kind for d in outcome.divergences}:
            setattr(by_kind, kind, getattr(by_kind, kind) + 1)
    diverged = sum(1 for o in outcomes if o.divergences)
    return DeterminismSummary(
        requests=len(outcomes),
        identical=len(outcomes) - diverged,
        diverged=diverged,
        by_kind=by_kind,
        unique_completions=sum(o.unique_completions for o in outcomes),
        logprob_drift=sum(len(o.logprob_drift) for o in outcomes),
        failed=sum(1 for o in outcomes if o.failures),
        failed_streams=sum(len(o.failures) for o in outcomes),
    )


def _report(
    options: SuiteOptions,
    started_at: str,
    replicas: Sequence[ReplicaInfo],
    results: list[CheckResult],
    section: DeterminismSection,
    players: Sequence[Replica] = (),
    *,
    interrupted: bool = False,
) -> Report:
    latency = {p.number: summarize_latency(p.timings) for p in players}
    targets = [
        TargetInfo(
            engine=options.engine,
            url=r.url,
            label=f"{options.engine}#{n}",
            **r.model_dump(include=set(PROVENANCE)),
            capabilities=CapabilitySummary(supported=[], unsupported=[], source="inferred"),
            latency=latency.get(n),
            request_extra=dict(options.request_extra) or None,
        )
        for n, r in enumerate(replicas)
    ]
    return Report.assemble(
        started_at=started_at,
        reproduce=options.reproduce,
        targets=targets,
        results=results,
        determinism=section,
        interrupted=interrupted,
    )
