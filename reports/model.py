"""The compliance report: one pydantic model, the source of every writer and of the JSON Schema."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .provenance import VersionSource

__all__ = [
    "SCHEMA_VERSION",
    "TOOL_VERSION",
    "ByKind",
    "CapabilitySummary",
    "CheckResult",
    "CorpusInfo",
    "DeterminismSection",
    "DeterminismSummary",
    "Divergence",
    "Implementation",
    "LatencySummary",
    "LogprobDrift",
    "Percentiles",
    "ReplicaInfo",
    "Report",
    "ReportSignature",
    "RequestOutcome",
    "Slot",
    "Summary",
    "TargetInfo",
    "TokenRef",
    "ToolInfo",
    "canonical_content",
    "content_digest",
    "summarize",
    "utc_now",
    "verdict",
]

SCHEMA_VERSION: Literal["1"] = "1"
TOOL_VERSION = "0.1.0"
"""conform's version, as reports state it (kept equal to pyproject's by a test)."""

Status = Literal["passed", "failed", "skipped", "error"]
Level = Literal["core", "extended"]
Verdict = Literal["conformant", "partial", "nonconformant"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolInfo(_Model):
    name: str = "conform"
    version: str


class Implementation(_Model):
    organization: str | None = None
    project: str | None = None
    version: str | None = None
    url: str | None = None
    contact: list[str] = Field(default_factory=list)


class CapabilitySummary(_Model):
    supported: list[str]
    unsupported: list[str]
    source: Literal["inferred", "declared"] = "inferred"
    """declared: the run narrowed or extended what probing inferred (--capabilities / --exempt)."""
    declared: list[str] = Field(default_factory=list)
    """Capabilities declared supported on the command line, whatever probing found."""
    exempt: list[str] = Field(default_factory=list)
    """Capabilities declared unsupported (their checks are skipped), whatever probing found."""


class Percentiles(_Model):
    p50: float
    p90: float
    p99: float


class LatencySummary(_Model):
    """Measured on the harness's monotonic clock over every stream of the run that produced tokens."""

    streams: int
    tokens: int
    ttft_ms: Percentiles | None
    """Time to first token: from when the request was written to the connection (so not counting the
    connection pool, connect or TLS) to the arrival of the read that carried the first token."""
    itl_ms: Percentiles | None
    """Inter-token latency: the gaps between consecutive tokens of a stream."""
    tokens_per_s: float | None
    """Tokens per second of one stream, averaged over the run (tokens / stream durations)."""
    token_times: Literal["read"] = "read"
    """When a token's time is taken: ``read``, when the harness's read of its bytes returned, so when they
    had reached the process; a harness that is busy reads, and so stamps, late (never early)."""


class TargetInfo(_Model):
    engine: str
    url: str
    engine_version: str | None
    """The version builds are compared by: declared (--engine-version), else reported where it names a build;
    None when unknown (never equal to another unknown)."""
    engine_version_source: VersionSource | None = None
    engine_version_reported: str | None = None
    """What the engine reported, verbatim (``b0-unknown`` for a llama.cpp built without git metadata)."""
    model: str | None
    model_digest: str | None
    capabilities: CapabilitySummary
    label: str | None = None
    """How results name this target (engine, or engine@stub for an embedded stub)."""
    latency: LatencySummary | None = None
    request_extra: dict[str, Any] | None = None
    """The fields --request-extra added to every generation request, where any were given: results of runs
    with other extras do not compare."""


class Summary(_Model):
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0


class CheckResult(_Model):
    id: str
    feature: str
    scenario: str
    engine: str
    level: Level
    status: Status
    duration_s: float = Field(ge=0)
    detail: str | None = None
    target: str | None = None
    """The target's label (see TargetInfo.label)."""


class CorpusInfo(_Model):
    source: str
    """'builtin' or the corpus/golden file's path."""
    requests: int
    seed: int | None


PROVENANCE = frozenset({"engine_version", "engine_version_source", "engine_version_reported", "model", "model_digest"})
"""What a target, a replica and a golden file each record of the build and model that answered."""


class ReplicaInfo(_Model):
    url: str
    engine_version: str | None
    """As TargetInfo.engine_version."""
    engine_version_source: VersionSource | None = None
    engine_version_reported: str | None = None
    model: str | None
    model_digest: str | None
    sampler: dict[str, Any] | None = None
    """The sampling settings the replica reports it used (llama.cpp generation_settings), where it does."""


class ByKind(_Model):
    replica: int = 0
    load: int = 0
    repeat: int = 0
    baseline: int = 0
    cache: int = 0


class DeterminismSummary(_Model):
    requests: int
    identical: int
    diverged: int
    by_kind: ByKind
    unique_completions: int = 0
    """Distinct token sequences summed over requests (equal to `requests` when everything agrees)."""
    logprob_drift: int = 0
    """Comparisons whose tokens agree but whose log-probabilities differ beyond --logprob-rtol."""
    failed: int = 0
    """Requests with a stream that failed in some replica and mode (their other comparisons are kept)."""
    failed_streams: int = 0
    """Streams that failed, over every request, replica and mode."""


class Slot(_Model):
    """Which stream of a comparison: a replica (None for a golden file) and a mode."""

    replica: int | None
    mode: str
    repeat: int = 0


class TokenRef(_Model):
    id: int | None
    text: str


DivergenceKind = Literal["replica", "load", "repeat", "baseline", "cache"]


class Divergence(_Model):
    kind: DivergenceKind
    a: Slot
    b: Slot
    index: int
    common_prefix: int
    token_a: TokenRef | None
    """None when stream a ended before index."""
    token_b: TokenRef | None
    context: list[str] = Field(default_factory=list)
    """Texts of the (up to 8) tokens both streams share just before `index`."""
    after_a: list[str] = Field(default_factory=list)
    """Texts of stream a's (up to 8) tokens from `index` on."""
    after_b: list[str] = Field(default_factory=list)


class LogprobDrift(_Model):
    kind: DivergenceKind
    a: Slot
    b: Slot
    index: int
    logprob_a: float
    logprob_b: float


class StreamFailure(_Model):
    """A stream of a request that failed: where, and how (the error kind and its detail)."""

    slot: Slot
    kind: str
    detail: str


class CompletionGroup(_Model):
    """One distinct completion of identical requests: how many gave it, and how it begins."""

    count: int
    text: str
    """The completion's first 80 characters."""


class IdenticalRequests(_Model):
    """The unique-completions experiment of one request: N identical copies, K in flight at once (``burst``)."""

    requests: int
    concurrency: int
    completions: list[CompletionGroup]
    """Each distinct completion with how many requests gave it, the most common first."""
    divergence_positions: list[int]
    """For each request whose completion is not the most common: the token where it first differs from it."""
    divergence_min: int | None = None
    divergence_median: float | None = None
    divergence_max: int | None = None


class RequestOutcome(_Model):
    id: str
    verdict: Literal["identical", "diverged"]
    """Over the streams that completed: whether any two of those compared differ."""
    unique_completions: int
    divergences: list[Divergence]
    logprob_drift: list[LogprobDrift] = Field(default_factory=list)
    failures: list[StreamFailure] = Field(default_factory=list)
    """Streams of this request that failed; each is left out of the comparisons, which all others still make."""
    identical_requests: IdenticalRequests | None = None
    """With --repeat N > 1: N identical copies sent K (--concurrency) at a time, and what they gave."""
    load_overlap: int | None = None
    """Fewest other requests generating at the same time as this one under load (0: load not achieved)."""


class DeterminismSection(_Model):
    corpus: CorpusInfo
    modes: list[str]
    concurrency: int
    repeat: int
    replicas: list[ReplicaInfo]
    summary: DeterminismSummary
    requests: list[RequestOutcome]
    sampler: dict[str, Any] = Field(default_factory=dict)
    """The sampler profile of the corpus (per-request settings are in the corpus itself)."""
    logprob_rtol: float = 0.0
    baseline: ReplicaInfo | None = None
    """With --baseline: the provenance the golden file was recorded on (its url is the golden file's path)."""


class ReportSignature(_Model):
    """A publisher's signature of the report's canonical content (`canonical_content`)."""

    algorithm: Literal["ed25519"]
    public_key_fingerprint: str
    """``sha256:`` of the raw public key: whose key signed."""
    value: str
    """The signature, base64."""


class Report(_Model):
    schema_version: Literal["1"] = SCHEMA_VERSION
    tool: ToolInfo
    started_at: str
    finished_at: str
    reproduce: str
    implementation: Implementation = Field(default_factory=Implementation)
    targets: list[TargetInfo]
    result: Verdict
    summary: Summary
    results: list[CheckResult]
    interrupted: bool = False
    """True when the run was stopped before every check ran (Ctrl-C)."""
    insecure: bool = False
    """True when TLS certificates were not verified (--insecure): a published report must say so."""
    determinism: DeterminismSection | None = None
    digest: str | None = None
    """``sha256:`` of the report's canonical content (without this field and `signature`); see `content_digest`."""
    signature: ReportSignature | None = None
    """With --sign-key: the publisher's Ed25519 signature of the same canonical content."""

    @classmethod
    def assemble(
        cls,
        *,
        started_at: str,
        reproduce: str,
        targets: list[TargetInfo],
        results: list[CheckResult],
        **extra: Any,
    ) -> Report:
        """A report finished now, its verdict and summary derived from the results."""
        return cls(
            tool=ToolInfo(version=TOOL_VERSION),
            started_at=started_at,
            finished_at=utc_now(),
            reproduce=reproduce,
            targets=targets,
            result=verdict(results),
            summary=summarize(results),
            results=results,
            **extra,
        )

    def to_json(self, sign: Callable[[dict[str, Any]], ReportSignature] | None = None) -> str:
        """The report as written: sealed with the digest of its content, and signed when given a signer."""
        exclude = {"determinism"} if self.determinism is None else set()
        document = self.model_dump(mode="json", exclude=exclude | {"digest", "signature"})
        document["digest"] = content_digest(document)
        if sign is not None:
            document["signature"] = sign(document).model_dump(mode="json")
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


_SEALS = ("digest", "signature")
"""The fields that seal a report, left out of the content they seal."""


def canonical_content(document: dict[str, Any]) -> bytes:
    """A report document's canonical form (sorted keys, no whitespace, UTF-8) without its seals."""
    content = {k: v for k, v in document.items() if k not in _SEALS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_digest(document: dict[str, Any]) -> str:
    """The sha256 of a report document's canonical content.

    Anyone can recompute it from the published JSON alone (`conform report --verify` does), so it proves the
    report is unmodified only to someone who trusts where it came from; a signature proves who published it.
    """
    return "sha256:" + hashlib.sha256(canonical_content(document)).hexdigest()


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verdict(results: list[CheckResult]) -> Verdict:
    """nonconformant: anything failed or broke; partial: a core check was skipped; else conformant."""
    if any(r.status in ("failed", "error") for r in results):
        return "nonconformant"
    if any(r.status == "skipped" and r.level == "core" for r in results):
        return "partial"
    return "conformant"


def summarize(results: list[CheckResult]) -> Summary:
    summary = Summary()
    for r in results:
        if r.status == "passed":
            summary.passed += 1
        elif r.status == "failed":
            summary.failed += 1
        elif r.status == "skipped":
            summary.skipped += 1
        else:
            summary.errors += 1
    return summary
