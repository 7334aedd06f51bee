"""Wall time of the default `conform run` (every engine's stub, every feature), beside `--workers 2`.

The default spreads the scenarios over `STUB_WORKERS` processes with work stealing; the alternative, one
process per core of a CI machine. Both run here, one after the other, on the same machine: the row passes
when the default takes under 20 s and runs exactly as many checks as the alternative.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from conform.harness.cli import STUB_WORKERS

from ._table import Row

__all__ = ["run"]

_TARGET_S = 20.0


@dataclass
class _Run:
    elapsed: float
    checks: int
    by_feature: dict[str, float]


def _conform_run(extra: list[str], quick: bool) -> _Run:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        args = [sys.executable, "-m", "conform", "run", "--quiet", "--report", str(report), *extra]
        if quick:
            args += ["--tags", "not extended"]
        start = time.perf_counter()
        result = subprocess.run(args, capture_output=True, text=True, timeout=600)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"conform run failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")
        results = json.loads(report.read_text())["results"]
    by_feature: dict[str, float] = defaultdict(float)
    for r in results:
        by_feature[r["feature"]] += r["duration_s"]
    return _Run(elapsed, len(results), dict(by_feature))


def run(quick: bool = False) -> list[Row]:
    now = _conform_run([], quick)
    before = _conform_run(["--workers", "2"], quick)
    checks = sum(now.by_feature.values())
    top = sorted(now.by_feature.items(), key=lambda kv: kv[1], reverse=True)[:3]
    dominant = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in top)
    note = (
        f"{now.checks} checks ({before.checks} with --workers 2) ran for {checks:.1f} s of check time on "
        f"{STUB_WORKERS} work-stealing workers; --workers 2 took {before.elapsed:.1f} s in the same run. "
        f"Dominant features (check time): {dominant}"
    )
    passed = now.elapsed < _TARGET_S and now.checks == before.checks
    return [
        Row(
            "default `conform run` wall time",
            now.elapsed,
            "s",
            f"< {_TARGET_S:g} s, same checks",
            passed,
            theirs=before.elapsed,
            alternative="--workers 2",
            note=note,
        )
    ]
