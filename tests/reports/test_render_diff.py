"""`conform report` and `conform diff` on real reports: one from a good stub, one from a regressed stub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_conform


@pytest.fixture
def reports(stub_process, tmp_path: Path) -> tuple[Path, Path]:
    good = stub_process({"token_delay_ms": 1})
    regressed = stub_process({"token_delay_ms": 1, "faults": [{"kind": "duplicate_token", "at_token": 3}]})
    baseline, candidate = tmp_path / "baseline.json", tmp_path / "candidate.json"
    for stub, path, expected in ((good, baseline, 0), (regressed, candidate, 1)):
        result = run_conform("run", "--engine", "llamacpp", "--url", stub.url, "--report", str(path), "--quiet")
        assert result.returncode == expected, result.stdout + result.stderr
    return baseline, candidate


def _statuses(path: Path) -> dict[str, str]:
    return {r["id"]: r["status"] for r in json.loads(path.read_text())["results"]}


def test_diff_lists_exactly_the_regressed_checks(reports: tuple[Path, Path], tmp_path: Path) -> None:
    baseline, candidate = reports
    before, after = _statuses(baseline), _statuses(candidate)
    expected = sorted(i for i in after if before.get(i) == "passed" and after[i] in ("failed", "error"))
    assert "ordering.indices" in expected
    comment = tmp_path / "comment.md"
    result = run_conform("diff", str(baseline), str(candidate), "--markdown", str(comment))
    assert result.returncode == 1, result.stdout + result.stderr
    regressed = result.stdout.split(f"### Regressed ({len(expected)})")[1].split("###")[0]
    listed = sorted(line.split("**")[1] for line in regressed.splitlines() if line.startswith("- "))
    assert listed == expected
    assert "(llamacpp): passed → failed: duplicated token index: token index 3 arrived twice" in regressed
    assert "### Fixed" not in result.stdout and "### New" not in result.stdout and "### Gone" not in result.stdout
    assert comment.read_text() == result.stdout
    same = run_conform("diff", str(baseline), str(baseline))
    assert same.returncode == 0 and "no regression" in same.stdout


def test_diff_the_other_way_lists_the_fix(reports: tuple[Path, Path]) -> None:
    baseline, candidate = reports
    result = run_conform("diff", str(candidate), str(baseline))
    assert result.returncode == 0
    assert (
        "### Fixed (" in result.stdout and "ordering.indices" in result.stdout and "### Regressed" not in result.stdout
    )


def test_report_renders_html_and_markdown(reports: tuple[Path, Path], tmp_path: Path) -> None:
    _, candidate = reports
    page, markdown = tmp_path / "r.html", tmp_path / "r.md"
    result = run_conform("report", str(candidate), "--html", str(page), "--markdown", str(markdown))
    assert result.returncode == 0, result.stderr
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<script" not in text and "http" not in text.split("<body>")[0]
    assert "id='matrix'" in text and "id='targets'" in text and "ordering.indices" in text
    assert "nonconformant" in text
    assert "TTFT p50 / p90 / p99 ms" in text and "tokens/s per stream" in text, "latency is in the HTML report"
    assert "| ordering | ❌ 0/2 |" in markdown.read_text()
    assert oct(page.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "line 1: not valid JSON"),
        ('{"schema_version": "1"}', "report field (top level): 'tool' is a required property"),
    ],
)
def test_a_bad_report_is_one_line_and_exit_2(tmp_path: Path, content: str, fragment: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    for args in (["report", str(bad)], ["diff", str(bad), str(bad)]):
        result = run_conform(*args)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0] and fragment in lines[0]


def test_determinism_drift_between_two_runs(stub_process, tmp_path: Path) -> None:
    good = stub_process({"token_delay_ms": 5})
    drifted = stub_process({"token_delay_ms": 5, "determinism": {"batch_variant_at": 2}})
    paths = []
    for stub, name in ((good, "a.json"), (drifted, "b.json")):
        path = tmp_path / name
        run_conform(
            "determinism",
            "--engine",
            "llamacpp",
            "--url",
            stub.url,
            "--requests",
            "2",
            "--max-tokens",
            "12",
            "--concurrency",
            "2",
            "--report",
            str(path),
            "--quiet",
        )
        paths.append(path)
    assert json.loads(paths[1].read_text())["determinism"]["summary"]["diverged"] == 2
    result = run_conform("diff", str(paths[0]), str(paths[1]))
    assert result.returncode == 1
    assert (
        "### Determinism drift (2)" in result.stdout
        and "load: replica 0 solo vs replica 0 load differ at token 2" in result.stdout
    )
