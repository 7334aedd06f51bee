"""Markdown and self-contained HTML from the one Report model, and the diff of two reports."""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from .model import (
    CheckResult,
    Divergence,
    IdenticalRequests,
    Percentiles,
    Report,
    Slot,
    StreamFailure,
    TargetInfo,
    TokenRef,
)
from .provenance import compare_provenance

__all__ = [
    "INSECURE_WARNING",
    "ReportDiff",
    "describe_divergence",
    "describe_failure",
    "describe_identical_requests",
    "describe_slot",
    "diff_reports",
    "matrix_cells",
    "render_diff_markdown",
    "render_html",
    "render_markdown",
]

_MARK = {"passed": "✅", "failed": "❌", "error": "💥", "skipped": "⏭️"}


def _key(result: CheckResult) -> tuple[str, str]:
    return (result.target or result.engine, result.id)


def matrix_cells(report: Report) -> tuple[list[str], list[str], dict[tuple[str, str], list[CheckResult]]]:
    """(columns, features, results by (feature, column)) of the features x targets matrix.

    Columns are the targets' labels; a run whose results name no target (a
    determinism run judges all replicas at once) has one column per engine instead.
    """
    named = list(dict.fromkeys(r.target or r.engine for r in report.results))
    labels = [t.label or t.engine for t in report.targets]
    columns = labels + [n for n in named if n not in labels] if set(named) & set(labels) else named
    features = list(dict.fromkeys(r.feature for r in report.results))
    cells: dict[tuple[str, str], list[CheckResult]] = defaultdict(list)
    for r in report.results:
        cells[(r.feature, r.target or r.engine)].append(r)
    return columns, features, cells


def _cell_text(results: list[CheckResult], *, emoji: bool = True) -> str:
    """A matrix cell: emoji for Markdown (GitHub renders them); words for HTML, which must not depend on fonts."""
    if not results:
        return "–"
    ran = [r for r in results if r.status != "skipped"]
    passed = sum(r.status == "passed" for r in ran)
    skipped = len(results) - len(ran)
    marks = ("❌", "✅", "⏭️") if emoji else ("FAIL", "ok", "")
    mark = marks[0] if passed < len(ran) else (marks[1] if ran else marks[2])
    text = f"{mark} {passed}/{len(ran)}" if ran else f"{marks[2]} skipped".strip()
    return text + (f" (+{skipped} skipped)" if ran and skipped else "")


def describe_slot(slot: Slot) -> str:
    """Which stream of a comparison: 'replica 0 load', 'replica 1 solo #2', or 'golden file'."""
    if slot.replica is None:
        return "golden file"
    suffix = f" #{slot.repeat + 1}" if slot.repeat else ""
    return f"replica {slot.replica} {slot.mode}{suffix}"


def describe_divergence(d: Divergence) -> str:
    """The first divergence in one line: kind, both streams, the index and both tokens."""

    def token(ref: TokenRef | None) -> str:
        if ref is None:
            return "(stream ended)"
        return f"{ref.id} {ref.text!r}" if ref.id is not None else repr(ref.text)

    return (
        f"{d.kind}: {describe_slot(d.a)} vs {describe_slot(d.b)} differ at token {d.index}: "
        f"{token(d.token_a)} vs {token(d.token_b)} (common prefix {d.common_prefix})"
    )


def describe_failure(f: StreamFailure) -> str:
    """A failed stream in one line: where (replica, mode, repeat) and how (its error kind and detail)."""
    return f"{describe_slot(f.slot)} failed: {f.kind}: {f.detail}"


def describe_identical_requests(x: IdenticalRequests) -> str:
    """The unique-completions experiment of one request in one line."""
    counts = ", ".join(str(group.count) for group in x.completions[:8]) + (", …" if len(x.completions) > 8 else "")
    text = f"burst: {x.requests} identical requests, {x.concurrency} at once: {len(x.completions)} unique ({counts})"
    if x.divergence_positions:
        text += (
            f"; first divergence from the most common at token min {x.divergence_min}, "
            f"median {x.divergence_median:g}, max {x.divergence_max}"
        )
    return text


INSECURE_WARNING = "TLS certificates were NOT verified (--insecure): this report does not prove whom it talked to"


def _implementation(report: Report) -> str:
    """The vendor's implementation metadata (--vendor), on one line; empty when none was given."""
    i = report.implementation
    parts = [p for p in (i.organization, i.project, i.version, i.url) if p]
    if i.contact:
        parts.append("contact: " + ", ".join(i.contact))
    return " · ".join(parts)


_NAMED = 3
"""Skipped core checks named in the one line that says why a result is partial."""


def partial_reason(report: Report, more_hint: str = "") -> str | None:
    """Why the result is partial, in one line: which core checks were skipped, where and for what. `more_hint`
    follows the count of those not named (where to see them)."""
    if report.result != "partial":
        return None
    skipped = [r for r in report.results if r.status == "skipped" and r.level == "core"]
    named = [f"{r.id} on {r.target or r.engine} ({r.detail})" for r in skipped[:_NAMED]]
    more = f", and {len(skipped) - _NAMED} more{more_hint}" if len(skipped) > _NAMED else ""
    return f"partial: {len(skipped)} core checks skipped: {', '.join(named)}{more}"


def render_markdown(report: Report) -> str:
    targets, features, cells = matrix_cells(report)
    s = report.summary
    lines = [
        f"# conform compliance report: **{report.result}**",
        "",
        f"{s.passed} passed, {s.failed} failed, {s.skipped} skipped, {s.errors} errors · "
        f"{report.started_at} → {report.finished_at} · conform {report.tool.version}"
        + (" · **interrupted**" if report.interrupted else ""),
        "",
        *([reason, ""] if (reason := partial_reason(report)) else []),
        f"Reproduce: `{report.reproduce}`",
        "",
        *([f"> **{INSECURE_WARNING}**", ""] if report.insecure else []),
        *([f"Implementation: {_implementation(report)}", ""] if _implementation(report) else []),
        "| target | engine | url | version | model | model digest |",
        "|---|---|---|---|---|---|",
    ]
    for t in report.targets:
        lines.append(
            f"| {t.label or t.engine} | {t.engine} | {t.url} | {t.engine_version or '–'} | {t.model or '–'} "
            f"| {t.model_digest or '–'} |"
        )
    if features:
        lines += ["", "| feature | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
        lines += [f"| {f} | " + " | ".join(_cell_text(cells[(f, t)]) for t in targets) + " |" for f in features]
    problems = [r for r in report.results if r.status in ("failed", "error")]
    if problems:
        lines += ["", "## Failures", ""]
        lines += [f"- {_MARK[r.status]} **{r.id}** ({r.target or r.engine}): {r.detail}" for r in problems]
    skipped = [r for r in report.results if r.status == "skipped"]
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- ⏭️ **{r.id}** ({r.target or r.engine}, {r.level}): {r.detail}" for r in skipped]
    latency = [t for t in report.targets if t.latency is not None and t.latency.ttft_ms is not None]
    if latency:
        lines += ["", "## Latency", "", "| target | streams | TTFT p50/p90/p99 ms | ITL p50/p90/p99 ms | tokens/s |"]
        lines.append("|---|---|---|---|---|")
        for t in latency:
            assert t.latency is not None and t.latency.ttft_ms is not None
            ttft, itl = t.latency.ttft_ms, t.latency.itl_ms
            itl_text = f"{itl.p50:g} / {itl.p90:g} / {itl.p99:g}" if itl else "–"
            lines.append(
                f"| {t.label or t.engine} | {t.latency.streams} | {ttft.p50:g} / {ttft.p90:g} / {ttft.p99:g} "
                f"| {itl_text} | {t.latency.tokens_per_s or '–'} |"
            )
    section = report.determinism
    if section is not None:
        d = section.summary
        lines += [
            "",
            "## Determinism",
            "",
            f"{d.requests} requests ({section.corpus.source}), modes {', '.join(section.modes)}: "
            f"{d.identical} identical, {d.diverged} diverged, {d.unique_completions} unique completions"
            + (f"; {d.failed} with a failed stream ({d.failed_streams} streams)." if d.failed else "."),
            "",
        ]
        for outcome in section.requests:
            if outcome.divergences:
                lines.append(f"- ❌ **{outcome.id}**: {describe_divergence(outcome.divergences[0])}")
            else:
                lines.append(f"- {'❌' if outcome.failures else '✅'} {outcome.id}")
            lines += [f"  - {describe_failure(f)}" for f in outcome.failures]
    return "\n".join(lines) + "\n"


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1b1b1b}
svg .bar{fill:#3b6ea5}svg.divergence-positions .bar{fill:#c0602a}svg text{font-size:11px}
figure{display:inline-block;margin:0 2rem 1rem 0;vertical-align:top}figcaption{max-width:32rem;color:#444}
p.insecure{background:#fde7e9;border:2px solid #a40e26;padding:.5rem}
h1 span.conformant{color:#106b21}h1 span.partial{color:#8a5a00}h1 span.nonconformant{color:#a40e26}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}td.fail{background:#fde7e9}td.pass{background:#e7f6ea}td.skip{background:#f5f5f5}
code,.tokens{font-family:ui-monospace,monospace}.tokens td{white-space:pre}
.tokens td.diff{background:#fde7e9;font-weight:bold}.tokens td.after{color:#666}
"""


def _percentiles(values: Percentiles | None) -> str:
    return "–" if values is None else f"{values.p50:g} / {values.p90:g} / {values.p99:g}"


def _html_results(
    title: str, list_id: str, results: list[CheckResult], qualifier: Callable[[CheckResult], str]
) -> list[str]:
    """A titled list of results: the check id, where it ran and `qualifier`, then its detail."""
    if not results:
        return []
    e = html.escape
    items = [
        f"<li><strong>{e(r.id)}</strong> ({e(r.target or r.engine)}, {e(qualifier(r))}): {e(r.detail or '')}</li>"
        for r in results
    ]
    return [f"<h2>{title}</h2><ul id='{list_id}'>", *items, "</ul>"]


def render_html(report: Report) -> str:
    """One self-contained page: no scripts, no external resources."""
    e = html.escape
    targets, features, cells = matrix_cells(report)
    s = report.summary
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>conform report: {e(report.result)}</title><style>{_CSS}</style></head><body>",
        f"<h1>conform compliance report: <span class='{e(report.result)}'>{e(report.result)}</span></h1>",
        f"<p>{s.passed} passed, {s.failed} failed, {s.skipped} skipped, {s.errors} errors · "
        f"{e(report.started_at)} → {e(report.finished_at)} · conform {e(report.tool.version)}"
        + (" · <strong>interrupted</strong>" if report.interrupted else "")
        + "</p>"
        + (f"<p id='partial'>{e(reason)}</p>" if (reason := partial_reason(report)) else "")
        + f"<p>Reproduce: <code>{e(report.reproduce)}</code></p>"
        + (f"<p class='insecure'><strong>{e(INSECURE_WARNING)}</strong></p>" if report.insecure else "")
        + (f"<p>Implementation: {e(_implementation(report))}</p>" if _implementation(report) else ""),
        "<h2>Targets</h2><table id='targets'><tr><th>target</th><th>url</th><th>version</th><th>model</th>"
        "<th>model digest</th><th>TTFT p50 / p90 / p99 ms</th><th>ITL p50 / p90 / p99 ms</th>"
        "<th>tokens/s per stream</th></tr>",
    ]
    for t in report.targets:
        latency = t.latency
        parts.append(
            f"<tr><td>{e(t.label or t.engine)}</td><td>{e(t.url)}</td><td>{e(t.engine_version or '–')}</td>"
            f"<td>{e(t.model or '–')}</td><td>{e(t.model_digest or '–')}</td>"
            f"<td>{_percentiles(latency.ttft_ms if latency else None)}</td>"
            f"<td>{_percentiles(latency.itl_ms if latency else None)}</td>"
            f"<td>{latency.tokens_per_s if latency and latency.tokens_per_s is not None else '–'}</td></tr>"
        )
    parts.append("</table>")
    if features:
        parts.append("<h2>Matrix</h2><table id='matrix'><tr><th>feature</th>")
        parts += [f"<th>{e(label)}</th>" for label in targets]
        parts.append("</tr>")
        for f in features:
            parts.append(f"<tr><th>{e(f)}</th>")
            for label in targets:
                results = cells[(f, label)]
                css = (
                    "fail"
                    if any(r.status in ("failed", "error") for r in results)
                    else ("pass" if any(r.status == "passed" for r in results) else "skip")
                )
                parts.append(f"<td class='{css}'>{e(_cell_text(results, emoji=False))}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    problems = [r for r in report.results if r.status in ("failed", "error")]
    parts += _html_results("Failures", "failures", problems, lambda r: r.status)
    skipped = [r for r in report.results if r.status == "skipped"]
    parts += _html_results("Skipped", "skipped", skipped, lambda r: r.level)
    section = report.determinism
    if section is not None:
        parts.append(
            f"<h2>Determinism</h2><p>{section.summary.identical} identical, {section.summary.diverged} "
            f"diverged of {section.summary.requests} requests; modes {e(', '.join(section.modes))}"
            f"{f'; {section.summary.failed} with a failed stream' if section.summary.failed else ''}.</p>"
        )
        failed = [(o.id, f) for o in section.requests for f in o.failures]
        if failed:
            parts.append("<h3>Failed streams</h3><ul id='failed-streams'>")
            parts += [f"<li><strong>{e(request)}</strong>: {e(describe_failure(f))}</li>" for request, f in failed]
            parts.append("</ul>")
        for outcome in section.requests:
            if outcome.identical_requests is not None:
                parts.append(_experiment_html(outcome.id, outcome.identical_requests))
        for outcome in section.requests:
            for d in outcome.divergences[:1]:
                parts.append(f"<h3>{e(outcome.id)}: {e(d.kind)} divergence at token {d.index}</h3>")
                parts.append(_aligned_streams(d))
    parts.append("</body></html>")
    return "".join(parts) + "\n"


_BAR_W, _CHART_H, _PAD = 28, 120, 24
"""Bar width, chart height and padding of the experiment's pictures, in SVG units."""


def _bars(kind: str, title: str, values: list[int], labels: list[str], caption: str) -> str:
    """An inline SVG bar chart: a bar per value, its number above it and its label below; every bar carries
    its value (``data-value``) for a reader that checks the picture."""
    e = html.escape
    top = max(values, default=0) or 1
    width = _PAD * 2 + max(1, len(values)) * (_BAR_W + 6)
    height = _CHART_H + _PAD * 3
    marks = []
    for n, (value, label) in enumerate(zip(values, labels, strict=True)):
        x = _PAD + n * (_BAR_W + 6)
        bar = round(_CHART_H * value / top)
        y = _PAD + _CHART_H - bar
        marks.append(
            f"<rect class='bar' x='{x}' y='{y}' width='{_BAR_W}' height='{bar}' data-value='{value}'>"
            f"<title>{e(label)}: {value}</title></rect>"
            f"<text class='value' x='{x + _BAR_W / 2}' y='{y - 4}' text-anchor='middle'>{value}</text>"
            f"<text class='label' x='{x + _BAR_W / 2}' y='{_PAD + _CHART_H + 14}' "
            f"text-anchor='middle'>{e(label)}</text>"
        )
    return (
        f"<figure><svg class='{kind}' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{e(title)}'><title>{e(title)}</title>"
        f"<line x1='{_PAD}' y1='{_PAD + _CHART_H}' x2='{width - _PAD}' y2='{_PAD + _CHART_H}' stroke='#444'/>"
        + "".join(marks)
        + f"</svg><figcaption>{e(caption)}</figcaption></figure>"
    )


def _experiment_html(request_id: str, x: IdenticalRequests) -> str:
    """The unique-completions experiment of one request: a bar per distinct completion (how many of the N
    requests gave it) and a histogram of where the others first left the most common one."""
    e = html.escape
    counts = [group.count for group in x.completions]
    names = [f"#{n + 1}" for n in range(len(counts))]
    chart = _bars(
        "unique-completions",
        f"{request_id}: {len(counts)} unique completions of {x.requests} identical requests",
        counts,
        names,
        f"{len(counts)} unique completions of {x.requests} identical requests, {x.concurrency} at once "
        "(a bar each: how many requests gave it; #1 is the most common)",
    )
    if x.divergence_positions:
        by_position = Counter(x.divergence_positions)
        positions = list(range(min(by_position), max(by_position) + 1))
        histogram = _bars(
            "divergence-positions",
            f"{request_id}: where completions first differ from the most common",
            [by_position.get(p, 0) for p in positions],
            [str(p) for p in positions],
            f"first token that differs from the most common completion, per request: min {x.divergence_min}, "
            f"median {x.divergence_median:g}, max {x.divergence_max}",
        )
    else:
        histogram = "<p>Every request gave the same completion: no divergence to place.</p>"
    heading = f"<h3>{e(request_id)}: identical requests</h3>"
    return f"<section class='experiment' id='experiment-{e(request_id)}'>{heading}{chart}{histogram}</section>"


def _aligned_streams(d: Divergence) -> str:
    """Both streams one token per cell, aligned on the index: shared context, then the first difference."""
    e = html.escape
    start = d.index - len(d.context)
    width = len(d.context) + max(len(d.after_a), len(d.after_b), 1)
    header = "".join(f"<th>{start + n}</th>" for n in range(width))

    def row(slot: Slot, after: list[str], token: TokenRef | None) -> str:
        pieces = d.context + (after or ([token.text] if token else []))
        cells = []
        for n in range(width):
            text = pieces[n] if n < len(pieces) else None
            css = "diff" if n == len(d.context) else ("after" if n > len(d.context) else "same")
            cells.append(f"<td class='{css}'>{e(repr(text)) if text is not None else '(ended)'}</td>")
        return f"<tr><th>{e(describe_slot(slot))}</th>{''.join(cells)}</tr>"

    return (
        f"<table class='tokens'><tr><th>token</th>{header}</tr>"
        + row(d.a, d.after_a, d.token_a)
        + row(d.b, d.after_b, d.token_b)
        + "</table>"
    )


@dataclass
class ReportDiff:
    """What changed from a baseline report to a candidate, check by check (keyed by target and id)."""

    regressed: list[tuple[CheckResult, CheckResult]] = field(default_factory=list)
    fixed: list[tuple[CheckResult, CheckResult]] = field(default_factory=list)
    new: list[CheckResult] = field(default_factory=list)
    gone: list[CheckResult] = field(default_factory=list)
    determinism_drift: list[str] = field(default_factory=list)
    """Requests identical in the baseline and diverged in the candidate."""
    engines: list[str] = field(default_factory=list)
    """Per target in both reports: which builds and models are compared."""
    allow_gone: bool = False
    """A check that passed and is gone is a regression (a candidate that stops running a check must not look
    better), unless allowed (--allow-gone: the check was dropped on purpose)."""

    @property
    def gone_passed(self) -> list[CheckResult]:
        return [r for r in self.gone if r.status == "passed"]

    @property
    def has_regression(self) -> bool:
        return bool(self.regressed or self.determinism_drift or (self.gone_passed and not self.allow_gone))


def report_kind(report: Report) -> str:
    """``determinism`` for a `conform determinism` report, ``run`` for a conformance run's."""
    return "determinism" if report.determinism is not None else "run"


def diff_reports(baseline: Report, candidate: Report, *, allow_gone: bool = False) -> ReportDiff:
    before = {_key(r): r for r in baseline.results}
    after = {_key(r): r for r in candidate.results}
    result = ReportDiff(allow_gone=allow_gone)
    bad = ("failed", "error")
    for key, new in after.items():
        old = before.get(key)
        if old is None:
            result.new.append(new)
        elif old.status == "passed" and new.status in bad:
            result.regressed.append((old, new))
        elif old.status in bad and new.status == "passed":
            result.fixed.append((old, new))
    result.gone = [r for key, r in before.items() if key not in after]
    result.engines = _engines_compared(baseline.targets, candidate.targets)
    if baseline.determinism is not None and candidate.determinism is not None:
        was = {o.id: o.verdict for o in baseline.determinism.requests}
        for outcome in candidate.determinism.requests:
            if was.get(outcome.id) == "identical" and outcome.verdict == "diverged":
                result.determinism_drift.append(
                    f"{outcome.id}: {describe_divergence(outcome.divergences[0])}"
                    if outcome.divergences
                    else outcome.id
                )
    return result


def _engines_compared(before: list[TargetInfo], after: list[TargetInfo]) -> list[str]:
    """A line per target label in both reports: its engine version, then and now, and whether the model is
    the same."""
    was = {t.label or t.engine: t for t in before}
    return [
        f"{t.label or t.engine}: {compare_provenance(was[t.label or t.engine], t)}"
        for t in after
        if (t.label or t.engine) in was
    ]


def render_diff_markdown(diff: ReportDiff) -> str:
    verdict = "❌ regressions" if diff.has_regression else "✅ no regression"
    lines = [f"## conform diff: {verdict}", ""]
    sections = [
        ("Engines compared", diff.engines),
        (
            "Regressed",
            [f"**{n.id}** ({n.target or n.engine}): {o.status} → {n.status}: {n.detail}" for o, n in diff.regressed],
        ),
        ("Determinism drift", diff.determinism_drift),
        ("Fixed", [f"**{n.id}** ({n.target or n.engine}): {o.status} → passed" for o, n in diff.fixed]),
        ("New", [f"**{r.id}** ({r.target or r.engine}): {r.status}" for r in diff.new]),
        (
            "Gone" if diff.allow_gone or not diff.gone_passed else "Gone (a passed check that is gone is a regression)",
            [f"**{r.id}** ({r.target or r.engine}): was {r.status}" for r in diff.gone],
        ),
    ]
    for title, items in sections:
        if items:
            lines += [f"### {title} ({len(items)})", "", *(f"- {item}" for item in items), ""]
    if not any(items for title, items in sections[1:]):
        lines.append("Nothing changed.")
    return "\n".join(lines).rstrip() + "\n"
