"""The conventions of the tools conform's users know (pytest, schemathesis): tags that name what reports name,
-q/-v/-x, colour only where it shows, defaults from pyproject.toml and CONFORM_* variables, and output a person
reads: a matrix that fits 80 columns, skipped checks folded into counts, a partial result that says why."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from conform.harness.catalogue import check_catalogue
from tests.harness.test_cli import assert_one_line_error
from tests.helpers import run_conform

pytestmark = pytest.mark.slow  # end to end: `conform` in a subprocess against the stubs

ANSI = re.compile(r"\x1b\[[0-9;]*m")
QUICK = "ordering.indices,determinism.repeat"
UNSEEDED = (
    "determinism.repeat on anthropic@stub (target lacks capability seed), "
    "determinism.repeat on responses@stub (target lacks capability seed)"
)
"""Why a QUICK run is partial: the two wires without a seed."""
"""Two checks over the nine stubs: a few seconds, and determinism.repeat is skipped on anthropic (no seed)."""


def test_tags_name_features_and_levels_as_reports_do(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    ordering = run_conform("run", "--tags", "ordering", "--report", str(report), "-q")
    assert ordering.returncode == 0, ordering.stdout + ordering.stderr
    results = json.loads(report.read_text())["results"]
    assert results and {r["feature"] for r in results} == {"ordering"}
    core = run_conform("run", "--tags", "core and (ordering or admission_stream)", "--report", str(report), "-q")
    assert core.returncode == 0, core.stdout + core.stderr
    results = json.loads(report.read_text())["results"]
    catalogue = check_catalogue()
    assert {r["level"] for r in results} == {"core"} and any(e.level == "extended" for e in catalogue)
    assert {r["id"].split("[")[0] for r in results} == {
        e.id for e in catalogue if e.level == "core" and e.feature in ("ordering", "admission_stream")
    }, "a scenario that no tag calls extended is core, as reports say"
    typo = run_conform("run", "--tags", "ordering and corre")
    assert typo.returncode == 2
    assert_one_line_error(typo.stderr, "--tags: 'corre' names no feature, level or tag (valid: admission_stream")
    assert "Unknown marker" not in typo.stderr
    listed = " ".join(run_conform("run", "--help").stdout.split())
    assert "select scenarios by feature name (admission_stream, auth, cancel," in listed
    assert "level (core, extended)" in listed


def test_piped_output_is_the_failures_and_the_summary_and_says_why_partial(tmp_path: Path) -> None:
    plain = run_conform("run", "--checks", QUICK)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    lines = plain.stdout.splitlines()
    assert not any(line.startswith("feature") for line in lines), "no matrix in a pipe"
    assert lines[0].startswith("result: partial — 18 passed, 0 failed, 2 skipped")
    assert lines[1] == f"partial: 2 core checks skipped: {UNSEEDED}"
    assert "\x1b" not in plain.stdout + plain.stderr, "no colour in a pipe"
    assert len(plain.stderr.splitlines()) <= 12, "a line per tenth of the run, not per check"

    verbose = run_conform("run", "--checks", QUICK, "-v")
    assert verbose.returncode == 0
    matrix = verbose.stdout.split("\nresult:")[0]
    grid = [line for line in matrix.splitlines() if not line.startswith(("latency", "SKIPPED"))]
    assert matrix.startswith("feature ") and max(len(line) for line in grid) <= 80
    assert "echo@stub" in matrix and "latency llamacpp@stub: TTFT" in matrix
    assert "SKIPPED anthropic@stub determinism.repeat: target lacks capability seed" in verbose.stdout
    assert "SKIPPED responses@stub determinism.repeat: target lacks capability seed" in verbose.stdout
    assert len([line for line in verbose.stderr.splitlines() if line.startswith("[")]) == 20, "a line per check"

    quiet = run_conform("run", "--checks", QUICK, "-q")
    assert quiet.returncode == 0 and not [line for line in quiet.stderr.splitlines() if line.startswith("[")]


def test_colour_is_forced_or_refused_by_the_conventional_variables() -> None:
    forced = run_conform("run", "--checks", "ordering.indices", "-q", env={"FORCE_COLOR": "1"})
    assert "\x1b[32mconformant\x1b[0m" in forced.stdout
    refused = run_conform("run", "--checks", "ordering.indices", "-q", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert refused.returncode == 0 and "\x1b" not in refused.stdout + refused.stderr


def test_exitfirst_stops_at_the_first_failed_check(stub_process, tmp_path: Path) -> None:
    stub = stub_process({"faults": [{"kind": "duplicate_token", "at_token": 3}]})
    report = tmp_path / "report.json"
    args = ["run", "--engine", "llamacpp", "--url", stub.url, "--features", "features/ordering.feature"]
    everything = run_conform(*args, "--report", str(report), "-q")
    assert everything.returncode == 1
    ran = len(json.loads(report.read_text())["results"])
    first = run_conform(*args, "--report", str(report), "-q", "-x")
    assert first.returncode == 1, first.stdout + first.stderr
    results = json.loads(report.read_text())["results"]
    assert results[-1]["status"] == "failed" and len(results) < ran


def test_defaults_come_from_pyproject_and_conform_variables_and_the_command_line_wins(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conform]\ntimeout = 12\n\n[tool.conform.run]\nchecks = "ordering.indices"\nquiet = true\n'
    )
    report = tmp_path / "report.json"
    configured = run_conform("run", "--report", str(report), env={"CONFORM_TAGS": "core"}, cwd=tmp_path)
    assert configured.returncode == 0, configured.stdout + configured.stderr
    document = json.loads(report.read_text())
    assert {r["id"] for r in document["results"]} == {"ordering.indices"}
    assert not [line for line in configured.stderr.splitlines() if line.startswith("[")], "quiet = true"
    assert document["reproduce"] == (
        f"conform run --report {report} --timeout 12.0 --checks ordering.indices --quiet --tags core"
    ), "the reproduce line shows the effective values"
    overridden = run_conform(
        "run", "--report", str(report), "--timeout", "5", "--checks", "ordering.reassembly",
        env={"CONFORM_CHECKS": "admission.stream"}, cwd=tmp_path,
    )  # fmt: skip
    assert overridden.returncode == 0, overridden.stdout + overridden.stderr
    document = json.loads(report.read_text())
    assert {r["id"] for r in document["results"]} == {"ordering.reassembly"}
    assert document["reproduce"] == f"conform run --report {report} --timeout 5 --checks ordering.reassembly --quiet"

    (tmp_path / "pyproject.toml").write_text("[tool.conform.run]\ntiemout = 3\n")
    typo = run_conform("run", cwd=tmp_path)
    assert typo.returncode == 2
    assert_one_line_error(typo.stderr, "[tool.conform.run]: 'tiemout' is no option of conform run")
    (tmp_path / "pyproject.toml").write_text('[tool.conform]\nquiet = "maybe"\n')
    flag = run_conform("run", cwd=tmp_path)
    assert flag.returncode == 2
    assert_one_line_error(flag.stderr, "--quiet is a flag: give true or false, not 'maybe'")
    (tmp_path / "pyproject.toml").unlink()
    bad = run_conform("run", "--checks", "ordering.indices", env={"CONFORM_TIMEOUT": "soon"}, cwd=tmp_path)
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, "environment variable CONFORM_TIMEOUT: --timeout = 'soon' is not a valid value")


def test_on_a_terminal_the_matrix_wraps_to_its_width_and_is_painted() -> None:
    from conform.harness.cli import _print_outcome
    from conform.harness.console import Console
    from conform.reports import CapabilitySummary, CheckResult, Report, TargetInfo, utc_now

    labels = [f"engine{n}@stub" for n in range(9)]
    results = [
        CheckResult(
            id="ordering.indices",
            feature="ordering",
            scenario="s",
            engine=label.split("@")[0],
            level="core",
            status="failed" if n == 3 else "passed",
            duration_s=0.1,
            detail="index 3 twice",
            target=label,
        )
        for n, label in enumerate(labels)
    ]
    targets = [
        TargetInfo(
            engine=label.split("@")[0],
            url="",
            engine_version=None,
            model=None,
            model_digest=None,
            label=label,
            capabilities=CapabilitySummary(supported=[], unsupported=[]),
        )
        for label in labels
    ]
    report = Report.assemble(started_at=utc_now(), reproduce="conform run", targets=targets, results=results)
    out = io.StringIO()
    _print_outcome(report, Console(out, colour=True, interactive=True), 1.0)
    text = out.getvalue()
    shown = ANSI.sub("", text)
    assert all(len(line) <= 80 for line in shown.splitlines()), "80 columns when the terminal's width is unknown"
    assert shown.count("feature ") == 2, "the nine targets wrap into two blocks"
    assert "\x1b[31;1mFAIL 0/1" in text and "\x1b[32mok 1/1" in text
    assert "FAILED engine3@stub ordering.indices: index 3 twice" in shown


def test_html_and_markdown_list_every_skipped_check_with_its_reason_and_say_why_partial(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    page, markdown = tmp_path / "report.html", tmp_path / "report.md"
    result = run_conform(
        "run", "--checks", QUICK, "-q", "--report", str(report), "--html", str(page), "--markdown", str(markdown)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    why = f"partial: 2 core checks skipped: {UNSEEDED}"
    text = markdown.read_text()
    assert why in text and "## Skipped" in text
    assert "- ⏭️ **determinism.repeat** (anthropic@stub, core): target lacks capability seed" in text
    html = page.read_text()
    assert f"<p id='partial'>{why}</p>" in html
    assert "<li><strong>determinism.repeat</strong> (anthropic@stub, core): target lacks capability seed</li>" in html
