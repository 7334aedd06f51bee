"""Against a real Triton server (PyTriton on Python 3.12, a decoupled model streaming on CPU).

Skipped with a reason where no Python 3.12 with nvidia-pytriton is found; .ci/run
makes .venv-triton so that these run in CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conform.reports import validate_report
from tests.helpers import RunningProcess, run_conform

pytestmark = [pytest.mark.real_engine, pytest.mark.triton]


def test_conform_run_against_real_triton_passes(triton_server: RunningProcess, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run_conform(
        "run",
        "--engine",
        "triton",
        "--url",
        triton_server.url,
        "--model",
        "tiny",
        "--timeout",
        "60",
        "--report",
        str(report),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(report.read_text())
    validate_report(document)
    target = document["targets"][0]
    assert target["engine_version"].startswith("triton 2."), "the server's /v2 version is the provenance"
    assert target["model"] == "tiny@1"
    statuses = {r["id"]: r["status"] for r in document["results"]}
    for check_id in ("admission.stream", "ordering.indices", "cancel.stream_stops", "determinism.repeat"):
        assert statuses[check_id] == "passed", statuses
    assert statuses["errors.unknown_endpoint"] == "passed"
