"""The benchmark scripts run (on tiny inputs): the numbers themselves are never asserted in tests."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks import sse, timing
from benchmarks._machine import CpuTicks, steal_between
from conform.stubs import Timeline, TimelineGeneration

pytestmark = pytest.mark.slow  # end to end: `conform` in a subprocess, a browser, whole runs


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


def test_a_late_stub_is_the_stubs_error_not_the_harness_s() -> None:
    delay = timing.DELAY_S
    # The stub's third token left 3 ms late; the client read each token 0.1 ms after it was written.
    written = [0.5 + delay, 0.5 + 2 * delay, 0.5 + 3 * delay + 0.003, 0.5 + 4 * delay]
    story = Timeline(
        engine="llamacpp", generations=[TimelineGeneration(number=1, prompt="p", started_at=0.5, written_at=written)]
    )
    streams = [("p", 0.4999, [at + 0.0001 for at in written])]
    against_stub, lateness = timing._against_stub(streams, story)
    against_script = timing._against_script(streams)
    assert max(against_stub.itl) < 1e-9 and abs(against_stub.ttft[0] - 0.0002) < 1e-9
    assert abs(max(against_script.itl) - 0.003) < 1e-9  # the late gap and the short one after it
    assert abs(lateness[-1] - 0.003) < 1e-9 and abs(lateness[0]) < 1e-9
