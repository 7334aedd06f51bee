"""A secret given with --api-key-env appears nowhere, even when the engine echoes it back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import RunningProcess, run_conform

SECRET = "sk-conform-secret-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    ("engine", "header"), [("openai", "Authorization"), ("anthropic", "x-api-key"), ("llamaswap", "Authorization")]
)
def test_an_echoed_secret_reaches_no_artifact(
    engine: str, header: str, stub_process: Callable[..., RunningProcess], tmp_path: Path
) -> None:
    echo = f"{{header:{header}}}"
    stub = stub_process(
        {
            "faults": [
                {"kind": "status", "status": 401, "message": f"invalid credentials {echo}", "times": 4},
                {"kind": "error_in_stream", "at_token": 1, "message": f"credentials {echo} rejected mid-stream"},
            ]
        },
        engine=engine,
    )
    out = tmp_path / "out"
    out.mkdir()
    result = run_conform(
        "run",
        "--engine",
        engine,
        "--url",
        stub.url,
        "--api-key-env",
        "CONFORM_SECRET",
        "--report",
        str(out / "report.json"),
        "--junit",
        str(out / "junit.xml"),
        "--html",
        str(out / "report.html"),
        "--markdown",
        str(out / "report.md"),
        "--alluredir",
        str(out / "allure"),
        env={"CONFORM_SECRET": SECRET},
    )
    assert result.returncode == 1, "the echoing engine fails its checks"
    artifacts = [p for p in out.rglob("*") if p.is_file()]
    assert len(artifacts) >= 5
    texts = [result.stdout, result.stderr, *(p.read_text(encoding="utf-8", errors="replace") for p in artifacts)]
    leaks = [
        name
        for name, text in zip(["stdout", "stderr", *(p.name for p in artifacts)], texts, strict=True)
        if SECRET in text
    ]
    assert not leaks, f"the secret leaked into {leaks}"
    assert all(SECRET[-12:] not in text for text in texts), "not even the secret's tail leaks"
    assert "[fp:" in (out / "report.json").read_text(), "the echoed secret shows as a fingerprint"
