"""`conform determinism` at scale: 1,000 requests against two replicas, beside the engine-bound floor.

Two echo stubs stream at a realistic pace (a token every 10 ms); the suite sends each request to both at
once, solo, one request after another. The engine alone needs `tokens x delay` per request: that is the
floor no client can beat, and the harness's cost is what it adds to it. Memory is measured at two corpus
sizes: a run that keeps only each request's outcome, never its tokens, peaks at about the same resident
set whether it replays 100 requests or 1,000.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ._processes import serve
from ._table import Row

__all__ = ["run"]

TOKEN_DELAY_MS = 10.0
TOKENS = 16
"""Tokens per request: a short answer at a fast engine's pace, so that the harness's share is not hidden by
long streams (the floor of 1,000 requests is still under three minutes)."""


def _determinism(urls: list[str], requests: int, report: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one `conform determinism` run in a child process.

    The CPU time and peak RSS are that child's own, from os.wait4 on it: RUSAGE_CHILDREN would also count any
    earlier benchmark's process that the subprocess module happens to reap meanwhile."""
    args = [sys.executable, "-m", "conform", "determinism", "--engine", "echo", "--quiet", "--no-load"]
    for url in urls:
        args += ["--url", url]
    args += ["--requests", str(requests), "--max-tokens", str(TOKENS), "--report", str(report)]
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        child = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, text=True)
        limit = threading.Timer(1800, child.kill)
        limit.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            limit.cancel()
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"conform determinism failed ({child.returncode}): {output.read()[-4000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run(quick: bool = False) -> list[Row]:
    large, small = (60, 20) if quick else (1000, 100)
    script = {"token_delay_ms": TOKEN_DELAY_MS}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        urls = [stack.enter_context(serve("stub", script, engine="echo"))[0] for _ in range(2)]
        report = Path(scratch) / "report.json"
        wall_small, cpu_small, rss_small = _determinism(urls, small, report)
        wall, cpu, rss_large = _determinism(urls, large, report)
        summary = json.loads(report.read_text())["determinism"]["summary"]
    if summary["requests"] != large or summary["identical"] != large:
        raise RuntimeError(f"the run did not compare every request identically: {summary}")
    floor = large * TOKENS * TOKEN_DELAY_MS / 1000
    # Per request: what the larger run cost beyond the smaller, so that start-up (the interpreter, imports,
    # the first connections), paid once by both, does not count as the cost of each request.
    per_request_ms = (cpu - cpu_small) / (large - small) * 1000
    engine_ms = TOKENS * TOKEN_DELAY_MS
    return [
        Row(
            f"determinism {large:,} requests x 2 replicas: harness CPU per request",
            per_request_ms,
            "ms",
            "< 5% of the engine",
            per_request_ms < 0.05 * engine_ms,
            theirs=engine_ms,
            alternative="engine time per request (floor)",
            note=f"{cpu:.1f} s of CPU for {large:,} requests, {cpu_small:.1f} s for {small:,} (start-up included in "
            f"both); each on 2 replicas at {TOKENS} tokens x {TOKEN_DELAY_MS:g} ms, which the engine alone needs "
            f"{engine_ms:g} ms for",
        ),
        Row(
            f"determinism {large:,} requests x 2 replicas: wall time",
            wall,
            "s",
            "< 1.25x the floor",
            wall < 1.25 * floor,
            theirs=floor,
            alternative="engine-bound floor",
            note=f"the floor is the time the stubs need to stream every token, the replicas in parallel; the rest "
            f"is start-up, connections, comparison and the report ({wall_small:.1f} s for {small:,} requests)",
        ),
        Row(
            f"determinism peak RSS, {large:,} requests",
            rss_large,
            "MiB",
            "< 1.2x the small run",
            rss_large < 1.2 * rss_small,
            theirs=rss_small,
            alternative=f"{small:,} requests",
            note="bounded memory: each request is judged as soon as its streams are in, and only its outcome kept",
        ),
    ]
