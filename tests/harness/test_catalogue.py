"""`conform list`, `--checks` and `--exclude-checks`: the check ids come from the features, and select what runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conform.features import FEATURES_DIR
from conform.harness.catalogue import check_catalogue, check_table
from tests.helpers import README, run_conform


def test_the_catalogue_has_every_check_tag_of_the_features_once() -> None:
    tagged = re.findall(r"@check:([\w.]+)", "".join(p.read_text() for p in sorted(FEATURES_DIR.glob("*.feature"))))
    assert [entry.id for entry in check_catalogue()] == tagged
    assert len(set(tagged)) == len(tagged), "a check id names one scenario"


def test_the_readme_check_table_is_the_features() -> None:
    assert check_table(check_catalogue()) in README.read_text(encoding="utf-8"), (
        "README's 'What is checked' table drifted from the features: paste `python -m conform.harness.catalogue`"
    )


def test_conform_list_json_names_each_check_with_its_feature_level_and_needs() -> None:
    listed = run_conform("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    entries = {entry["id"]: entry for entry in json.loads(listed.stdout)}
    assert entries["limits.max_tokens"] == {
        "id": "limits.max_tokens",
        "feature": "limits",
        "level": "core",
        "needs": ["end_marker"],
        "description": "a request for N tokens streams exactly N unless the end names an earlier stop",
        "variants": 0,
        "variant_ids": [],
        "tags": ["needs_end_marker"],
    }
    assert entries["errors.status"]["needs"] == ["scripted_faults"] and entries["errors.status"]["variants"] == 9
    assert entries["tools.call"]["variant_ids"] == ["stream", "blocking"]
    assert [e["id"] for e in json.loads(listed.stdout)] == [e.id for e in check_catalogue()]


def test_conform_list_text_is_a_line_per_check() -> None:
    listed = run_conform("list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == len(check_catalogue())
    assert any(
        re.match(r"errors\.invalid_param\s+request_errors, core \(needs non_streaming\): ", line) for line in lines
    )


@pytest.mark.parametrize("option", ["--checks", "--exclude-checks"])
def test_an_unknown_check_id_is_a_usage_error_listing_the_valid_ones(option: str) -> None:
    ran = run_conform("run", option, "limits.max_tokens,limits.nosuch")
    assert ran.returncode == 2 and ran.stdout == ""
    assert ran.stderr.startswith(
        f"conform: error: {option}: unknown check id 'limits.nosuch' (valid: admission.stream,"
    )
    assert "Traceback" not in ran.stderr and len(ran.stderr.splitlines()) == 1


@pytest.mark.slow
def test_checks_and_exclude_checks_choose_what_runs(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    chosen = run_conform("run", "--checks", "limits.max_tokens,ordering.indices", "--report", str(report))
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert {r["id"] for r in json.loads(report.read_text())["results"]} == {"limits.max_tokens", "ordering.indices"}
    left = run_conform(
        "run",
        "--features",
        str(FEATURES_DIR / "ordering.feature"),
        "--exclude-checks",
        "ordering.reassembly",
        "--report",
        str(report),
    )
    assert left.returncode == 0, left.stdout + left.stderr
    assert {r["id"] for r in json.loads(report.read_text())["results"]} == {"ordering.indices"}


def test_variants_are_named_as_their_results_are() -> None:
    entries = {entry.id: entry for entry in check_catalogue()}
    assert entries["tools.call"].result_ids == ["tools.call[stream]", "tools.call[blocking]"]
    assert entries["tools.stream_equivalence"].result_ids == ["tools.stream_equivalence"]
    assert "errors.status[404-model not found-not_found-not retriable]" in entries["errors.status"].result_ids


@pytest.mark.slow
def test_checks_choose_one_variant_by_its_result_id(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    chosen = run_conform("run", "--checks", "tools.call[stream]", "--report", str(report))
    assert chosen.returncode in (0, 1), chosen.stdout + chosen.stderr
    ran = {r["id"] for r in json.loads(report.read_text())["results"] if r["status"] != "skipped"}
    assert ran == {"tools.call[stream]"}
