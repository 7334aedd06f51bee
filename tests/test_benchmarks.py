"""The benchmark scripts run (on tiny inputs): the numbers themselves are never asserted in tests."""

from __future__ import annotations

import subprocess
import sys

from benchmarks import sse
from benchmarks._machine import CpuTicks, steal_between


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


def test_steal_is_the_hypervisors_share_of_the_cpu_time_between_two_readings() -> None:
    before, after = CpuTicks(steal=10, total=1000), CpuTicks(steal=60, total=2000)
    assert after.steal_since(before) == 0.05
    assert steal_between(before, after) == "CPU steal 5.0%"
    assert steal_between(None, after) == ""  # no /proc/stat: nothing is claimed
    assert before.steal_since(before) is None
