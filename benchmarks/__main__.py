"""`python -m benchmarks [--quick] [--only NAME ...] [--write PATH]`: run, print the table, keep the latest."""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from conform.reports import write_atomic

from . import overhead, scale, sse, stub_throughput, timing, wall
from ._machine import CpuTicks, steal_between
from ._table import Row, render

BENCHMARKS: dict[str, Callable[[bool], list[Row]]] = {
    "sse": sse.run,
    "stub": stub_throughput.run,
    "overhead": overhead.run,
    "timing": timing.run,
    "wall": wall.run,
    "scale": scale.run,
}
RESULTS = Path(__file__).with_name("RESULTS.md")


def run_isolated(name: str, quick: bool) -> list[Row]:
    """One benchmark in a fresh interpreter: what an earlier one left behind (a large heap for the garbage
    collector to walk, frozen objects, open sockets) must not slow the next one down."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(BENCHMARKS[name], quick).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure conform beside the alternative a user would pick, in the same run, and print the "
        "table. Runs from a checkout of conform (the benchmarks are not installed with it), after "
        'pip install -e ".[dev]", which brings the alternatives.',
    )
    parser.add_argument("--quick", action="store_true", help="tiny inputs: checks that every benchmark runs")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--write", type=Path, help=f"write the table as Markdown (default without --quick: {RESULTS})")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    started, ticks = time.perf_counter(), CpuTicks.now()
    for name in args.only or list(BENCHMARKS):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += run_isolated(name, args.quick)
    elapsed = time.perf_counter() - started
    # Steal: time the hypervisor gave this VM's CPUs to others. It comes and goes, and moves every figure.
    steal = steal_between(ticks, CpuTicks.now())
    print(render(rows))
    print(f"\n{len(rows)} measurements in {elapsed:.0f} s" + (f"; {steal} over the run" if steal else ""))
    target = args.write or (None if args.quick else RESULTS)
    if target is not None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        machine = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
        write_atomic(
            target,
            f"# Latest benchmark results\n\n`python -m benchmarks` on {stamp} ({machine}, "
            f"2 cores), {elapsed:.0f} s" + (f", {steal} over the run" if steal else "") + "."
            f"\n\n{render(rows, markdown=True)}\n",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
