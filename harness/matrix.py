"""The features × targets matrix printed at the end of `conform run`."""

from __future__ import annotations

from collections import defaultdict

from conform.reports import CheckResult, Report, describe_failure, describe_identical_requests, matrix_cells
from conform.reports.provenance import compare_provenance

from .console import Paint, plain

__all__ = ["failure_lines", "latency_lines", "render_determinism", "render_matrix", "skipped_lines"]


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


def render_matrix(report: Report, width: int = 80, paint: Paint = plain) -> str:
    """The features x targets grid, wrapped into blocks of targets that fit `width` columns."""
    targets, features, grid = matrix_cells(report)
    cells = {(f, t): _cell(grid[(f, t)]) for f in features for t in targets}
    first = max(len("feature"), *(len(f) for f in features)) if features else len("feature")
    widths = {t: max(len(t), *(len(cells[(f, t)]) for f in features)) for t in targets}
    blocks: list[list[str]] = [[]]
    used = first
    for t in targets:
        if blocks[-1] and used + 2 + widths[t] > width:
            blocks.append([])
            used = first
        blocks[-1].append(t)
        used += 2 + widths[t]
    lines: list[str] = []
    for block in blocks:
        if lines:
            lines.append("")
        lines.append("  ".join(["feature".ljust(first), *(t.ljust(widths[t]) for t in block)]).rstrip())
        lines.append("  ".join(["-" * first, *("-" * widths[t] for t in block)]))
        for f in features:
            row = [f.ljust(first), *(paint(cells[(f, t)].ljust(widths[t]), cells[(f, t)].split()[0]) for t in block)]
            lines.append("  ".join(row).rstrip())
    return "\n".join(lines)


def failure_lines(report: Report, paint: Paint = plain) -> list[str]:
    """A line per check that failed or errored: where, which, and the detail a vendor acts on."""
    return [
        f"{paint(r.status.upper().ljust(6), r.status)} {r.target or r.engine} {r.id}: {r.detail}"
        for r in report.results
        if r.status in ("failed", "error")
    ]


def skipped_lines(report: Report, paint: Paint = plain) -> list[str]:
    return [
        f"{paint('SKIPPED', 'skipped')} {r.target or r.engine} {r.id}: {r.detail}"
        for r in report.results
        if r.status == "skipped"
    ]


_SHOWN = 4
"""Divergences printed per request: with --repeat 100 a request can have a hundred."""


def render_determinism(report: Report, every_request: bool = True) -> str:
    """A line per request (with `every_request` False, only those that diverged or have something else to
    say), then every failed check and the summary."""
    from .determinism import describe_divergence

    section = report.determinism
    lines: list[str] = []
    if section is not None:
        for outcome in section.requests:
            says_more = outcome.divergences or outcome.failures or outcome.logprob_drift
            if not (every_request or says_more or outcome.identical_requests is not None):
                continue
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
            ("\n" if lines else "")
            + f"{s.requests} requests: {s.identical} identical, {s.diverged} diverged"
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


def latency_lines(report: Report) -> list[str]:
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
