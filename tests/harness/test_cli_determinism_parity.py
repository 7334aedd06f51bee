"""`determinism` and `diff` as a user of `run` expects them: the same outputs and options, and a baseline
that says what it compared and warns about options it does not use."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conform.reports import validate_report
from tests.harness.test_cli import assert_one_line_error
from tests.helpers import run_conform

pytestmark = pytest.mark.slow  # end to end: `conform` in a subprocess against a stub

DETERMINISM = ["determinism", "--engine", "llamacpp", "--requests", "2", "--max-tokens", "6", "--no-load"]


def test_determinism_writes_every_output_run_does(stub_process, tmp_path: Path) -> None:
    stub = stub_process({})
    out = {name: tmp_path / name for name in ("report.json", "report.html", "report.md", "junit.xml")}
    transcripts = tmp_path / "transcripts"
    result = run_conform(
        *DETERMINISM, "--url", stub.url, "--url", stub.url, "--report", str(out["report.json"]),
        "--html", str(out["report.html"]), "--markdown", str(out["report.md"]), "--junit", str(out["junit.xml"]),
        "--transcripts", str(transcripts), "--connect-timeout", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out["report.json"].read_text())
    validate_report(document)
    ids = [r["id"] for r in document["determinism"]["requests"]]
    assert "<h2>Determinism</h2><p>2 identical, 0 diverged of 2 requests" in out["report.html"].read_text()
    assert "2 requests (builtin), modes solo, cache: 2 identical" in out["report.md"].read_text()
    cases = ET.parse(out["junit.xml"]).getroot().iter("testcase")
    assert {(c.get("classname"), c.get("name")) for c in cases} == {
        ("determinism", f"{r['id']} ({r['target'] or r['engine']})") for r in document["results"]
    }
    assert sorted(p.name for p in transcripts.iterdir()) == sorted(
        f"{request_id}--replica{n}.ndjson" for request_id in ["probe", *ids] for n in (0, 1)
    ), "a transcript per request and replica, named by the request id (and what was asked before: probe)"
    first = json.loads((transcripts / f"{ids[0]}--replica0.ndjson").read_text().splitlines()[0])
    assert first["kind"] == "request" and "/completion" in first["url"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--connect-timeout", "0"], "--connect-timeout must be positive, got 0"),
        (["--ca-bundle", "/nonexistent.pem"], "--ca-bundle: /nonexistent.pem is not a file"),
        (["--junit", "-"], "only --report can be - (standard output)"),
        (["--timeout", "-1"], "--timeout must be positive, got -1"),
    ],
)
def test_determinism_option_mistakes_are_exit_2(extra: list[str], message: str) -> None:
    result = run_conform(*DETERMINISM, "--url", "http://127.0.0.1:1", *extra)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, message)


def test_the_timeout_default_is_runs(tmp_path: Path) -> None:
    for command in ("run", "determinism"):
        described = " ".join(run_conform(command, "--help").stdout.split()).split("--timeout SECONDS")[-1]
        assert "(default 30" in described[:80]


def test_a_baseline_says_what_it_compared_and_warns_about_options_it_does_not_use(stub_process, tmp_path: Path) -> None:
    stub = stub_process({})
    golden = tmp_path / "golden.jsonl"
    recorded = run_conform(*DETERMINISM, "--url", stub.url, "--record", str(golden))
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    same = run_conform(*DETERMINISM, "--url", stub.url, "--baseline", str(golden), "--record", str(golden))
    assert same.returncode == 2
    assert_one_line_error(same.stderr, f"--record {golden} is the --baseline")
    compared = run_conform(
        "determinism", "--engine", "llamacpp", "--no-load", "--url", stub.url, "--baseline", str(golden),
        "--seed", "7", "--max-tokens", "9",
    )  # fmt: skip
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert f"compared with the baseline {golden} (2 requests)" in compared.stdout
    assert "conform: warning: --seed 7 does not select the golden file's requests" in compared.stderr
    assert "conform: warning: --max-tokens 9 differs from the golden file's (6)" in compared.stderr
    quiet = run_conform(*DETERMINISM, "--url", stub.url, "--baseline", str(golden))
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, "the options it was recorded with: no warning"


def test_diff_refuses_reports_of_two_kinds_and_counts_a_gone_pass_as_a_regression(stub_process, tmp_path: Path) -> None:
    stub = stub_process({})
    run_report, det_report = tmp_path / "run.json", tmp_path / "det.json"
    ran = run_conform(
        "run", "--engine", "llamacpp", "--url", stub.url, "--checks", "ordering.indices,ordering.reassembly",
        "--report", str(run_report),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert run_conform(*DETERMINISM, "--url", stub.url, "--report", str(det_report)).returncode == 0
    mixed = run_conform("diff", str(run_report), str(det_report))
    assert mixed.returncode == 2
    assert_one_line_error(mixed.stderr, "is a run report", "a determinism report", "two reports of one kind")

    fewer = json.loads(run_report.read_text())
    fewer["results"] = [r for r in fewer["results"] if r["id"] != "ordering.reassembly"]
    candidate = tmp_path / "fewer.json"
    candidate.write_text(json.dumps(fewer))
    gone = run_conform("diff", str(run_report), str(candidate))
    assert gone.returncode == 1, gone.stdout
    assert "### Gone (a passed check that is gone is a regression) (1)" in gone.stdout
    assert "**ordering.reassembly** (llamacpp): was passed" in gone.stdout
    allowed = run_conform("diff", str(run_report), str(candidate), "--allow-gone")
    assert allowed.returncode == 0 and "### Gone (1)" in allowed.stdout


def test_exitfirst_stops_at_the_first_divergent_request(stub_process, tmp_path: Path) -> None:
    good, bad = stub_process({}), stub_process({"determinism": {"diverge_at": 2}})
    report = tmp_path / "report.json"
    stopped = run_conform(
        *DETERMINISM, "--requests", "5", "--url", good.url, "--url", bad.url, "-x", "--report", str(report)
    )
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "stopped at the first divergence (-x): 1 requests judged" in stopped.stdout
    document = json.loads(report.read_text())
    assert document["interrupted"] is True and len(document["determinism"]["requests"]) == 1


def test_more_requests_than_built_in_prompts_is_said_in_one_line(stub_process) -> None:
    from conform.harness.determinism import BUILTIN

    stub = stub_process({})
    count = len(BUILTIN) + 2
    result = run_conform(
        "determinism", "--engine", "llamacpp", "--url", stub.url, "--requests", str(count), "--max-tokens", "2",
        "--no-load", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("conform: note:")]
    assert notes == [
        f"conform: note: the built-in corpus has {len(BUILTIN)} prompts; {count} requests send them again with "
        "other seeds (--corpus FILE for prompts of your own)"
    ]
