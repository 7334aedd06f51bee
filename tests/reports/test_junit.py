"""JUnit from a report: a case per result named by check id and target, the detail as the failure message."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conform.reports import CapabilitySummary, CheckResult, Report, TargetInfo, render_junit, utc_now


def _result(check_id: str, feature: str, status: str, detail: str | None = None) -> CheckResult:
    return CheckResult(
        id=check_id, feature=feature, scenario=check_id, engine="llamacpp", level="core",
        status=status, duration_s=0.25, detail=detail, target="llamacpp@stub",
    )  # fmt: skip


def test_cases_are_named_by_check_and_grouped_by_feature() -> None:
    results = [
        _result("ordering.indices", "ordering", "failed", "duplicated token index 3 at frame 4"),
        _result("ordering.reassembly", "ordering", "passed"),
        _result("cancel.queued", "cancel", "skipped", "target lacks capability slots"),
        _result("stop.leak", "stop", "error", "ConnectionResetError: reset"),
    ]
    target = TargetInfo(
        engine="llamacpp", url="http://127.0.0.1:1", engine_version=None, model=None, model_digest=None,
        capabilities=CapabilitySummary(supported=[], unsupported=[]),
    )  # fmt: skip
    report = Report.assemble(started_at=utc_now(), reproduce="conform run", targets=[target], results=results)
    root = ET.fromstring(render_junit(report))
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("4", "1", "1", "1")
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert sorted(suites) == ["cancel", "ordering", "stop"]
    cases = {case.get("name"): case for case in root.iter("testcase")}
    failed = cases["ordering.indices (llamacpp@stub)"]
    assert failed.get("classname") == "ordering" and failed.get("time") == "0.250"
    failure = failed.find("failure")
    assert failure is not None and failure.get("message") == "duplicated token index 3 at frame 4"
    skipped = cases["cancel.queued (llamacpp@stub)"].find("skipped")
    assert skipped is not None and skipped.get("message") == "target lacks capability slots"
    assert cases["stop.leak (llamacpp@stub)"].find("error") is not None
    assert len(cases["ordering.reassembly (llamacpp@stub)"]) == 0, "a pass carries nothing"
