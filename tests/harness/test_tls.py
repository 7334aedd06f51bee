"""TLS: verification on by default, --ca-bundle for a private CA, --insecure said loudly in the report."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CONFORM, RunningProcess, run_conform

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate"),
    pytest.mark.slow,
]


@pytest.fixture
def https_stub(tmp_path: Path) -> Iterator[tuple[RunningProcess, Path]]:
    """A llama.cpp stub serving HTTPS with a self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    process = subprocess.Popen(
        [*CONFORM, "stub", "llamacpp", "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    stub = RunningProcess(process, process.stdout.readline().strip())
    assert stub.url.startswith("https://127.0.0.1:")
    yield stub, cert
    stub.stop()


def test_an_unknown_certificate_is_refused_by_default(https_stub: tuple[RunningProcess, Path]) -> None:
    stub, _ = https_stub
    result = run_conform("run", "--engine", "llamacpp", "--url", stub.url, "--tags", "not extended")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot reach" in result.stderr and "CERTIFICATE_VERIFY_FAILED" in result.stderr


def test_a_ca_bundle_makes_the_private_certificate_trusted(
    https_stub: tuple[RunningProcess, Path], tmp_path: Path
) -> None:
    stub, cert = https_stub
    report = tmp_path / "report.json"
    result = run_conform(
        "run", "--engine", "llamacpp", "--url", stub.url, "--ca-bundle", str(cert),
        "--features", "features/ordering.feature", "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(report.read_text())["insecure"] is False


def test_insecure_works_and_is_said_loudly(https_stub: tuple[RunningProcess, Path], tmp_path: Path) -> None:
    stub, _ = https_stub
    report, html = tmp_path / "report.json", tmp_path / "report.html"
    result = run_conform(
        "run", "--engine", "llamacpp", "--url", stub.url, "--insecure",
        "--features", "features/ordering.feature", "--report", str(report), "--html", str(html),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: TLS certificates were NOT verified" in result.stderr
    assert json.loads(report.read_text())["insecure"] is True
    assert "NOT verified" in html.read_text()
