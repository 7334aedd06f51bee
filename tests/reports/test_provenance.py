"""Which build a report speaks of (issue #22): a placeholder version is unknown, two unknowns never compare
equal, and a declared --engine-version is what builds are compared by, recorded as declared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conform.reports.provenance import compare_versions, identifies_build, versioned
from tests.helpers import run_conform


@pytest.mark.parametrize(
    ("version", "names_a_build"),
    [
        ("b0-unknown", False),
        ("unknown", False),
        ("", False),
        ("  ", False),
        (None, False),
        ("0", False),
        ("b0", False),
        ("N/A", False),
        ("b11434", True),
        ("b11434-8a3f2c1", True),
        ("0.11.2", True),
        ("0.11.2.dev123+g5e8d4", True),
        ("fp_conform0", True),
        ("3.0.1", True),
    ],
)
def test_a_placeholder_names_no_build(version: str | None, names_a_build: bool) -> None:
    assert identifies_build(version) is names_a_build


def test_declared_wins_and_says_so_and_unknowns_never_compare_equal() -> None:
    unknown = versioned("b0-unknown")
    assert (unknown.engine_version, unknown.engine_version_source, unknown.engine_version_reported) == (
        None,
        "unknown",
        "b0-unknown",
    )
    assert unknown.describe() == "unknown (the engine says 'b0-unknown')"
    assert "cannot be told apart" in compare_versions(unknown, versioned("b0-unknown"))
    old, new = versioned("b0-unknown", "b11104"), versioned("b0-unknown", "b11434")
    assert old.engine_version_source == "declared" and old.engine_version_reported == "b0-unknown"
    assert compare_versions(old, new) == "engine version b11104 (declared) → b11434 (declared)"
    assert compare_versions(versioned("0.11.2"), versioned("0.11.2")).endswith("on both sides: the same build")


def _run(stub_url: str, report: Path, *extra: str) -> dict[str, object]:
    result = run_conform(
        "run", "--engine", "llamacpp", "--url", stub_url, "--checks", "ordering.indices", *extra,
        "--report", str(report), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(report.read_text())


@pytest.mark.slow
def test_run_records_the_declared_version_and_diff_names_both_builds(stub_process, tmp_path: Path) -> None:
    old, new = stub_process({"build": "b0-unknown"}), stub_process({"build": "b0-unknown"})
    before, after, plain = tmp_path / "old.json", tmp_path / "new.json", tmp_path / "plain.json"
    target = _run(old.url, before, "--engine-version", "b11104")["targets"][0]  # type: ignore[index]
    assert (target["engine_version"], target["engine_version_source"], target["engine_version_reported"]) == (
        "b11104",
        "declared",
        "b0-unknown",
    )
    _run(new.url, after, "--engine-version", "b11434")
    diff = run_conform("diff", str(before), str(after))
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "llamacpp: engine version b11104 (declared) → b11434 (declared); the same model digest" in diff.stdout
    assert "Nothing changed." in diff.stdout
    undeclared = _run(new.url, plain)["targets"][0]  # type: ignore[index]
    assert (undeclared["engine_version"], undeclared["engine_version_source"]) == (None, "unknown")
    diff = run_conform("diff", str(plain), str(plain))
    assert "unknown (the engine says 'b0-unknown') → unknown" in diff.stdout and "--engine-version" in diff.stdout


@pytest.mark.slow
def test_a_golden_file_keeps_the_declared_version_and_the_baseline_names_both(stub_process, tmp_path: Path) -> None:
    old, new = stub_process({"build": "b0-unknown"}), stub_process({"build": "b0-unknown"})
    golden, report = tmp_path / "golden.jsonl", tmp_path / "report.json"
    args = ["determinism", "--engine", "llamacpp", "--requests", "2", "--max-tokens", "6", "--no-load"]
    recorded = run_conform(*args, "--url", old.url, "--engine-version", "b11104", "--record", str(golden))
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    line = json.loads(golden.read_text().splitlines()[0])
    assert (line["engine_version"], line["engine_version_source"]) == ("b11104", "declared")
    compared = run_conform(
        *args, "--url", new.url, "--engine-version", "b11434", "--baseline", str(golden), "--report", str(report)
    )
    assert compared.returncode == 0, compared.stdout + compared.stderr
    versions = "engine version b11104 (declared) → b11434 (declared); the same model digest"
    assert f"compared with the baseline {golden} (2 requests): {versions}" in compared.stdout
    section = json.loads(report.read_text())["determinism"]
    assert section["baseline"]["engine_version"] == "b11104" and section["baseline"]["url"] == str(golden)
    assert section["replicas"][0]["engine_version_source"] == "declared"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--engine-version", "b1"], "--model, --api-key-env and --engine-version need a live target"),
        (
            ["determinism", "--engine", "llamacpp", "--url", "http://127.0.0.1:1", "--url", "http://127.0.0.1:2",
             "--url", "http://127.0.0.1:3", "--engine-version", "a", "--engine-version", "b"],
            "--engine-version: given 2 times for 3 --url",
        ),
        (["run", "--engine", "llamacpp", "--url", "http://127.0.0.1:1", "--engine-version", " "], "cannot be empty"),
    ],
)  # fmt: skip
def test_a_bad_engine_version_is_exit_2(args: list[str], message: str) -> None:
    result = run_conform(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
