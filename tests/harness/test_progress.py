"""Progress: a live line on a terminal, plain lines in logs."""

from __future__ import annotations

import io

from conform.harness.progress import Progress
from conform.reports import CheckResult


def _result(status: str, check: str = "ordering.indices") -> CheckResult:
    detail = "token index 3 arrived twice" if status == "failed" else None
    return CheckResult(
        id=check,
        feature="ordering",
        scenario="s",
        engine="llamacpp",
        target="llamacpp@stub",
        level="core",
        status=status,
        duration_s=0.1,
        detail=detail,  # type: ignore[arg-type]
    )


def test_a_log_gets_the_failures_and_a_line_per_tenth_of_the_run() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.total = 20
    for n in range(20):
        progress.finished(_result("failed", "ordering.reassembly") if n == 4 else _result("passed"))
    progress.close()
    lines = out.getvalue().splitlines()
    assert "[  5/20] llamacpp@stub    failed  ordering.reassembly — token index 3 arrived twice" in lines
    marks = [line for line in lines if "% of the checks done" in line]
    assert marks[0] == "[  2/20] 10% of the checks done, 0 failed" and len(marks) == 10
    assert marks[-1] == "[ 20/20] 100% of the checks done, 1 failed"
    assert len(lines) == 11, "not a line per check"
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_verbose_gives_a_line_per_check_and_colour_paints_the_status() -> None:
    from conform.harness.console import Console

    out = io.StringIO()
    progress = Progress(out, verbose=True, paint=Console(out, colour=True).paint)
    progress.total = 2
    progress.finished(_result("passed"))
    progress.finished(_result("skipped", "ordering.reassembly"))
    assert out.getvalue().splitlines() == [
        "[  1/2] llamacpp@stub    \x1b[32mpassed \x1b[0m ordering.indices",
        "[  2/2] llamacpp@stub    \x1b[33mskipped\x1b[0m ordering.reassembly",
    ]


def test_colour_follows_the_terminal_and_no_color() -> None:
    from conform.harness.console import colour_wanted

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert colour_wanted(Terminal(), {}) and not colour_wanted(io.StringIO(), {})
    assert not colour_wanted(Terminal(), {"NO_COLOR": "1"}) and not colour_wanted(Terminal(), {"TERM": "dumb"})
    assert colour_wanted(io.StringIO(), {"FORCE_COLOR": "1"})


def test_a_live_line_on_a_terminal_keeps_failures_above_it() -> None:
    out = io.StringIO()
    progress = Progress(out, live=True)
    progress.total = 3
    progress.finished(_result("passed"))
    progress.finished(_result("failed", "ordering.reassembly"))
    progress.finished(_result("passed"))
    progress.close()
    text = out.getvalue()
    kept = [line for line in text.split("\n")[:-1]]
    assert len(kept) == 1 and kept[0].endswith(
        "[  2/3] llamacpp@stub    failed  ordering.reassembly — token index 3 arrived twice"
    )
    assert "[  3/3] llamacpp@stub · ordering.indices" in text
    assert text.endswith("\r\x1b[2K"), "the live line is erased at the end"


def test_eta_says_done_total_elapsed_and_time_left_at_the_pace_so_far() -> None:
    from conform.harness.progress import Eta

    now = [100.0]
    eta = Eta(1000, lambda: now[0])
    now[0] += 30.0
    assert eta.line(10, "q10") == "[  10/1000] q10 done; 30 s elapsed, ETA 49 min 30 s"
    now[0] += 3570.0
    assert eta.line(500, "q500") == "[ 500/1000] q500 done; 1 h 00 min elapsed, ETA 1 h 00 min"
    assert eta.line(1000, "q1000").endswith("ETA 0 s")
