"""The benchmark scripts run (on tiny inputs): the numbers themselves are never asserted in tests."""

from __future__ import annotations

import subprocess
import sys

from benchmarks import sse


def test_every_benchmark_runs_on_tiny_inputs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("SSE decode vs openai SDK", "stub throughput", "harness path", "ITL error", "wall time"):
        assert name in result.stdout
    assert "Traceback" not in result.stderr


def test_the_three_decoders_agree_on_every_recorded_stream() -> None:
    streams = sse.recorded_streams(50)
    for chunks in streams.values():
        reference = sse.decode_ours(chunks)
        assert len(reference) >= 50
        assert sse.decode_openai(chunks) == reference
        assert sse.decode_httpx_sse(chunks) == reference
