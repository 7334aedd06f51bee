"""A run asked to stop, by Ctrl-C or by a CI cancel's SIGTERM, to the whole group or to conform alone: the
running check finishes, the report is written marked interrupted, exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conform.reports import validate_report
from tests.helpers import CONFORM

pytestmark = pytest.mark.slow  # end to end: `conform` in a subprocess


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CONFORM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _wait_for_progress(process: subprocess.Popen[str], marker: str) -> list[str]:
    """The stderr lines up to the first that contains `marker`: the run is then under way, whatever the pace."""
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:
        seen.append(line)
        if marker in line:
            return seen
    pytest.fail(f"the run ended before printing {marker!r}: {''.join(seen)}")


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [
        pytest.param(signal.SIGTERM, False, id="SIGTERM-to-conform-alone"),
        pytest.param(signal.SIGINT, False, id="SIGINT-to-conform-alone"),
        pytest.param(signal.SIGTERM, True, id="SIGTERM-to-the-group"),
        pytest.param(signal.SIGINT, True, id="Ctrl-C-at-a-terminal"),  # a terminal signals the whole group
    ],
)
def test_a_stub_run_stops_after_the_running_check(tmp_path: Path, signum: int, whole_group: bool) -> None:
    report = tmp_path / "report.json"
    process = _start(["run", "--report", str(report), "-v"])  # -v: a progress line per check, in a pipe too
    first = _wait_for_progress(process, "[  1/")[-1]
    if whole_group:
        os.killpg(process.pid, signum)
    else:
        os.kill(process.pid, signum)  # the xdist workers are not told by the system: conform tells them
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert f"conform: interrupted ({signal.Signals(signum).name}) — finishing the current check" in stderr
    assert "INTERRUPTED: not every check ran" in stdout
    document = json.loads(report.read_text())
    validate_report(document)
    assert document["interrupted"] is True
    total = int(first.split("/")[1].split("]")[0])
    assert 0 < len(document["results"]) < total, "the run stopped early, with what it had finished"


def test_determinism_stops_after_the_running_request_and_writes_no_partial_golden_file(
    stub_process, tmp_path: Path
) -> None:
    stub = stub_process({"token_delay_ms": 2})
    report, golden = tmp_path / "report.json", tmp_path / "golden.jsonl"
    process = _start(
        ["determinism", "--engine", "llamacpp", "--url", stub.url, "--requests", "200", "--no-load",
         "--record", str(golden), "--report", str(report)]
    )  # fmt: skip
    _wait_for_progress(process, "/200] ")
    os.kill(process.pid, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "conform: interrupted (SIGTERM) — finishing the current request" in stderr
    assert "INTERRUPTED:" in stdout and "no golden file written" in stdout
    assert not golden.exists(), "a golden file missing requests would pass a later --baseline on them"
    document = json.loads(report.read_text())
    validate_report(document)
    assert document["interrupted"] is True
    assert 0 < len(document["determinism"]["requests"]) < 200
