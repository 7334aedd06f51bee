"""Wall time of the default `conform run` (every engine's stub, every feature), and what dominates it."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from ._table import Row

__all__ = ["run"]

_WORKERS = 2
"""What `conform run` uses against the embedded stubs (its --workers default)."""


def run(quick: bool = False) -> list[Row]:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        args = [sys.executable, "-m", "conform", "run", "--quiet", "--workers", str(_WORKERS)]
        args += ["--report", str(report)]
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
    checks = sum(by_feature.values())
    top = sorted(by_feature.items(), key=lambda kv: kv[1], reverse=True)[:3]
    dominant = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in top)
    per_worker = checks / _WORKERS
    note = (
        f"{len(results)} checks ran for {checks:.1f} s on {_WORKERS} workers ({per_worker:.1f} s each) "
        f"of {elapsed:.1f} s; start-up, collection and the report take the rest "
        f"({max(0.0, elapsed - per_worker):.1f} s). Dominant features (check time): {dominant}"
    )
    return [Row("default `conform run` wall time", elapsed, "s", "< 60 s", elapsed < 60, note=note)]
