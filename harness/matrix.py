"""The features × targets matrix printed at the end of `conform run`."""

from __future__ import annotations

from collections import defaultdict

from conform.reports import CheckResult, Report, describe_failure, describe_identical_requests, matrix_cells
from conform.reports.provenance import compare_provenance

__all__ = ["render_matrix"]


def _cell(results: list[CheckResult]) -> str:
    if not results:
        return "-"
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        counts[r.status] += 1
    ran = counts["passed"] + counts["failed"] + counts["error"]
    mark = "FAIL" if counts["failed"] or counts["error"] else ("ok" if ran else "skip")
    text = f"{mark} {counts['passed']}/{ran}" if ran else "skip"
    if ran and counts["skipped"]:
        text += f" +{counts['skipped']} skip"
    return text


def render_matrix(report: Report) -> str:
    targets, features, grid = matrix_cells(report)
    header = ["feature", *targets]
    rows = [[f, *(_cell(grid[(f, t)]) for t in targets)] for f in features]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.extend(_latency_lines(report))
    problems = [r for r in report.results if r.status in ("failed", "error")]
    if problems:
        lines.append("")
        for r in problems:
            lines.append(f"{r.status.upper():<6} {r.target or r.engine} {r.id}: {r.detail}")
    return "\n".join(lines)


_SHOWN = 4
"""Divergences printed per request: with --repeat 100 a request can have a hundred."""


def render_determinism(report: Report) -> str:
    """One line per request, then every failed check and the summary."""
    from .determinism import describe_divergence

    section = report.determinism
    lines: list[str] = []
    if section is not None:
        for outcome in section.requests:
            unique = f"{outcome.unique_completions} unique"
            load = f", load overlap {outcome.load_overlap}" if outcome.load_overlap is not None else ""
            if outcome.divergences:
                lines.append(f"DIVERGED   {outcome.id:<20} {unique}{load}")
                lines.extend(f"    {describe_divergence(d)}" for d in outcome.divergences[:_SHOWN])
                if len(outcome.divergences) > _SHOWN:
                    lines.append(f"    (+{len(outcome.divergences) - _SHOWN} more divergences: see the report)")
            else:
                lines.append(f"identical  {outcome.id:<20} {unique}{load}")
            lines.extend(f"    {describe_failure(f)}" for f in outcome.failures)
            if outcome.identical_requests is not None:
                lines.append(f"    {describe_identical_requests(outcome.identical_requests)}")
            for drift in outcome.logprob_drift:
                lines.append(
                    f"    logprob drift ({drift.kind}) at token {drift.index}: "
                    f"{drift.logprob_a!r} vs {drift.logprob_b!r} (tokens agree)"
                )
    for result in report.results:
        if (result.status in ("failed", "error") and not result.id.startswith("determinism.")) or (
            result.id in ("determinism.replica_mismatch", "determinism.load_overlap") and result.status != "passed"
        ):
            lines.append(f"{result.status.upper():<6} {result.id}: {result.detail}")
    if section is not None:
        s = section.summary
        kinds = ", ".join(f"{k} {v}" for k, v in s.by_kind.model_dump().items() if v)
        lines.append(
            f"\n{s.requests} requests: {s.identical} identical, {s.diverged} diverged"
            + (f" ({kinds})" if kinds else "")
            + f"; {s.unique_completions} unique completions; modes {', '.join(section.modes)}"
            + (f"; {s.logprob_drift} logprob drifts" if s.logprob_drift else "")
            + (f"; {s.failed} with a failed stream ({s.failed_streams} streams)" if s.failed else "")
        )
        if section.baseline is not None and section.replicas:
            lines.append(
                f"compared with the baseline {section.baseline.url} ({s.requests} requests): "
                f"{compare_provenance(section.baseline, section.replicas[0])}"
            )
    return "\n".join(lines)


def _latency_lines(report: Report) -> list[str]:
    lines = []
    for target in report.targets:
        latency = target.latency
        if latency is None or latency.ttft_ms is None:
            continue
        ttft = latency.ttft_ms
        text = f"latency {target.label or target.engine}: TTFT p50 {ttft.p50:g} ms p99 {ttft.p99:g} ms"
        if latency.itl_ms is not None:
            text += f"; ITL p50 {latency.itl_ms.p50:g} ms p90 {latency.itl_ms.p90:g} ms p99 {latency.itl_ms.p99:g} ms"
        if latency.tokens_per_s is not None:
            text += f"; {latency.tokens_per_s:g} tokens/s per stream ({latency.streams} streams)"
        lines.append(text)
    return ["", *lines] if lines else []
