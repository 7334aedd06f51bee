"""JUnit XML from a report: what CI systems (GitLab, Jenkins, GitHub test reporters) show.

One testsuite per feature, one testcase per check result: `name` is the check id with its target (so two
engines' results never share a name), `classname` the feature, and a failure's message is its detail,
what a vendor acts on. Timing arrays and internal properties stay in the JSON report.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby

from .model import CheckResult, Report

__all__ = ["render_junit", "testcase_name"]

_ELEMENT = {"failed": "failure", "error": "error", "skipped": "skipped"}


def testcase_name(result: CheckResult) -> str:
    """``ordering.indices (llamacpp@stub)``: the check id a user passes to --checks, and where it ran."""
    return f"{result.id} ({result.target or result.engine})"


def _counts(results: list[CheckResult]) -> dict[str, str]:
    return {
        "tests": str(len(results)),
        "failures": str(sum(r.status == "failed" for r in results)),
        "errors": str(sum(r.status == "error" for r in results)),
        "skipped": str(sum(r.status == "skipped" for r in results)),
        "time": f"{sum(r.duration_s for r in results):.3f}",
    }


def render_junit(report: Report) -> str:
    root = ET.Element("testsuites", {"name": "conform", **_counts(report.results)})
    ordered = sorted(report.results, key=lambda r: r.feature)
    for feature, group in groupby(ordered, key=lambda r: r.feature):
        results = list(group)
        suite = ET.SubElement(root, "testsuite", {"name": feature, "timestamp": report.started_at, **_counts(results)})
        for result in results:
            case = ET.SubElement(
                suite,
                "testcase",
                {"name": testcase_name(result), "classname": feature, "time": f"{result.duration_s:.3f}"},
            )
            element = _ELEMENT.get(result.status)
            if element is not None:
                detail = result.detail or result.status
                outcome = ET.SubElement(case, element, {"message": detail})
                if element != "skipped":
                    outcome.set("type", result.status)
                    outcome.text = f"{result.id} [{result.level}] on {result.target or result.engine}: {detail}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
