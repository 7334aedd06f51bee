"""Every artifact of one real run, checked the way its reader checks it.

One `conform run` against a stub that duplicates a token (so one check fails)
writes JSON, JUnit, allure, HTML, Markdown and transcripts; the JSON validates
and verifies, the JUnit parses, allure has steps and the failed scenario's
transcript, and the HTML renders in headless Chromium with its matrix.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conform.reports import validate_report
from tests.helpers import CONFORM, RunningProcess, run_conform

pytestmark = pytest.mark.slow  # end to end: `conform` in a subprocess, a browser, whole runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run; module-scoped because every test below reads the same artifacts."""
    out = tmp_path_factory.mktemp("artifacts")
    script = out / "script.json"
    script.write_text(json.dumps({"faults": [{"kind": "duplicate_token", "at_token": 3}]}), encoding="utf-8")
    vendor = out / "vendor.json"
    vendor.write_text(json.dumps({"organization": "Example Inc.", "project": "fastllm", "version": "2.1"}))
    stub = subprocess.Popen(
        [*CONFORM, "stub", "llamacpp", "--script", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert stub.stdout is not None
    running = RunningProcess(stub, stub.stdout.readline().strip())
    try:
        result = run_conform(
            "run", "--engine", "llamacpp", "--url", running.url, "--features", "features/ordering.feature",
            "--report", str(out / "report.json"), "--junit", str(out / "junit.xml"),
            "--alluredir", str(out / "allure"), "--html", str(out / "report.html"),
            "--markdown", str(out / "report.md"), "--transcripts", str(out / "transcripts"),
            "--vendor", str(vendor),
        )  # fmt: skip
    finally:
        running.stop()
    return {"dir": out, "result": result}


def test_the_run_fails_the_duplicated_token_check(artifacts: dict[str, Any]) -> None:
    result = artifacts["result"]
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED llamacpp ordering.indices: duplicated token index" in result.stdout


def test_json_validates_verifies_and_names_the_vendor(artifacts: dict[str, Any], tmp_path: Path) -> None:
    path = artifacts["dir"] / "report.json"
    document = json.loads(path.read_text())
    validate_report(document)
    assert document["implementation"]["organization"] == "Example Inc."
    assert document["digest"].startswith("sha256:")
    verified = run_conform("report", "--verify", str(path))
    assert verified.returncode == 0 and "digest matches" in verified.stdout
    assert "anyone who edits a report can recompute it" in verified.stdout, "the digest says what it proves"
    tampered = tmp_path / "tampered.json"
    document["results"][0]["status"] = "passed" if document["results"][0]["status"] == "failed" else "failed"
    tampered.write_text(json.dumps(document))
    refused = run_conform("report", "--verify", str(tampered))
    assert refused.returncode == 1 and "NOT VERIFIED: modified" in refused.stdout


def test_junit_parses_with_one_case_per_check(artifacts: dict[str, Any]) -> None:
    root = ET.parse(artifacts["dir"] / "junit.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    document = json.loads((artifacts["dir"] / "report.json").read_text())
    assert len(cases) == len(document["results"])
    messages = [failure.get("message") or "" for case in cases if (failure := case.find("failure")) is not None]
    assert len(messages) == 2, "the duplicated token breaks the indices and the reassembly"
    assert any("duplicated token index" in m for m in messages)
    by_id = {r["id"]: r for r in document["results"]}
    for case in cases:
        check_id, target = case.get("name", "").rsplit(" (", 1)
        assert check_id in by_id and target == "llamacpp)", "the name is the check id, with where it ran"
        assert case.get("classname") == by_id[check_id]["feature"] == suite.get("name")
    assert "token_times" not in ET.tostring(root, encoding="unicode"), "timing arrays stay in the JSON report"


def test_allure_has_gherkin_steps_and_the_failed_scenarios_transcript(artifacts: dict[str, Any]) -> None:
    folder = artifacts["dir"] / "allure"
    results = [json.loads(p.read_text()) for p in folder.glob("*-result.json")]
    assert results and all(r["steps"] for r in results)
    assert all(r["steps"][0]["name"].startswith("Given ") for r in results)
    failed = [r for r in results if r["status"] == "failed"]
    assert len(failed) == 2
    document = json.loads((artifacts["dir"] / "report.json").read_text())
    for result in results:
        labels = {label["name"]: label.get("value") for label in result["labels"]}
        parameters = {p["name"]: p for p in result["parameters"]}
        assert labels["feature"] == "ordering" and labels["story"] in {r["scenario"] for r in document["results"]}
        assert result["name"] == f"{labels['check_id']} (llamacpp)"
        assert parameters["target"]["value"] == "'llamacpp'" and parameters["url"]["value"].startswith("'http://")
        assert parameters["conform_target"]["mode"] == "hidden", "no Target(...) repr on show"
    for result in failed:
        attachments = result["attachments"]
        assert [a["name"] for a in attachments] == ["transcript.ndjson"]
        lines = (folder / attachments[0]["source"]).read_text().splitlines()
        kinds = [json.loads(line)["kind"] for line in lines]
        assert kinds[0] == "request" and "frame" in kinds


def test_transcripts_are_ndjson_per_scenario_named_by_check_id(artifacts: dict[str, Any]) -> None:
    files = sorted((artifacts["dir"] / "transcripts").glob("*.ndjson"))
    document = json.loads((artifacts["dir"] / "report.json").read_text())
    assert [f.name for f in files] == sorted(f"{r['id']}--llamacpp.ndjson" for r in document["results"])
    for file in files:
        entries = [json.loads(line) for line in file.read_text().splitlines()]
        assert entries[0]["kind"] == "request" and all(isinstance(e["t"], float) for e in entries)


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
)
def test_html_renders_in_headless_chromium_without_console_errors(artifacts: dict[str, Any]) -> None:
    page = artifacts["dir"] / "report.html"
    profile = artifacts["dir"] / "chromium-profile"
    assert CHROMIUM is not None
    shown = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = shown.stdout
    assert '<table id="matrix">' in dom or "<table id='matrix'>" in dom or 'id="matrix"' in dom
    assert "nonconformant" in dom and "duplicated token index" in dom
    console_errors = [line for line in shown.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line]
    assert not console_errors, console_errors


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
)
def test_the_unique_completions_experiment_is_drawn_in_the_html(tmp_path: Path) -> None:
    """--repeat N --concurrency K against a stub whose every request differs (it ignores the seed) and one that
    always agrees: the HTML draws a bar per unique completion and a histogram of divergence positions, each
    as inline SVG whose elements carry the numbers of the report."""
    stub = subprocess.Popen(
        [*CONFORM, "stub", "llamacpp", "--token-delay-ms", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    assert stub.stdout is not None
    running = RunningProcess(stub, stub.stdout.readline().strip())
    report, page = tmp_path / "report.json", tmp_path / "report.html"
    try:
        result = run_conform(
            "determinism", "--engine", "llamacpp", "--url", running.url, "--requests", "2", "--repeat", "12",
            "--concurrency", "4", "--max-tokens", "8", "--no-prompt-cache", "--report", str(report), "--quiet",
        )  # fmt: skip
    finally:
        running.stop()
    # 0, or 1 where this machine ran a load request alone (determinism.load_overlap): not this test's subject.
    assert result.returncode in (0, 1) and report.exists(), result.stdout + result.stderr
    document = json.loads(report.read_text())
    assert [r["identical_requests"]["completions"] for r in document["determinism"]["requests"]] == [
        [{"count": 12, "text": r["identical_requests"]["completions"][0]["text"]}]
        for r in document["determinism"]["requests"]
    ], "the well-behaved stub gives one completion to all twelve"
    document["determinism"]["requests"][0]["identical_requests"] = {  # what a nondeterministic engine gives
        "requests": 12,
        "concurrency": 4,
        "completions": [{"count": 9, "text": " a"}, {"count": 2, "text": " b"}, {"count": 1, "text": " c"}],
        "divergence_positions": [3, 3, 5],
        "divergence_min": 3,
        "divergence_median": 3,
        "divergence_max": 5,
    }
    report.write_text(json.dumps(document))
    rendered = run_conform("report", str(report), "--html", str(page))
    assert rendered.returncode == 0, rendered.stderr
    assert CHROMIUM is not None
    shown = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = shown.stdout
    assert "<script" not in dom and " src=" not in dom, "pictures inline: no script, nothing fetched"
    varied, steady = dom.split('class="experiment"')[1:3]
    bars = re.findall(r'class="unique-completions".*?</svg>', varied, re.S)[0]
    assert re.findall(r'class="bar"[^>]*data-value="(\d+)"', bars) == ["9", "2", "1"]
    assert "3 unique completions of 12 identical requests, 4 at once" in varied
    histogram = re.findall(r'class="divergence-positions".*?</svg>', varied, re.S)[0]
    assert re.findall(r'class="bar"[^>]*data-value="(\d+)"', histogram) == ["2", "0", "1"], "tokens 3, 4 and 5"
    assert "min 3, median 3, max 5" in varied
    assert re.findall(r'class="bar"[^>]*data-value="(\d+)"', steady.split("</section>")[0]) == ["12"]
    assert "Every request gave the same completion" in steady
