"""The pytest11 plugin stays inert in other repos unless asked, and skips with a reason when asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _quiet_ini(pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_plugin_is_inert_without_conform_options(pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "conform targets" not in result.stdout.str()


def test_tests_that_need_a_target_without_one_are_a_usage_error_not_a_run_of_skips(pytester) -> None:
    pytester.makepyfile("def test_uses_target(conform_target):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "conform: 1 collected tests need a conform target (e.g. test_" in result.stdout.str() + result.stderr.str()
    report = pytester.path / "r.json"
    asked = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--conform-report", str(report))
    assert asked.ret == pytest.ExitCode.USAGE_ERROR and not report.exists()
    asked.stderr.fnmatch_lines(["*no conform target: pass --conform-engine E --conform-url URL, or --conform-stub E*"])


def test_the_target_url_is_validated_and_an_unreachable_one_is_exit_2_like_the_cli(pytester) -> None:
    from tests.helpers import free_port

    pytester.makepyfile("def test_uses_target(conform_target):\n    pass\n")
    # In subprocesses: an in-process run would unload conform's modules under the engine registry's cache.
    bad = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--conform-engine", "llamacpp", "--conform-url", "localhost:8080"
    )  # fmt: skip
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--conform-url: bad URL 'localhost:8080': expected http(s)://host*"])
    endpoint = f"http://127.0.0.1:{free_port()}/completion"
    pasted = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--conform-engine", "llamacpp", "--conform-url", endpoint
    )  # fmt: skip
    pasted.stderr.fnmatch_lines(["*is an endpoint (/completion), not the server's base URL: try --conform-url*"])
    url = f"http://127.0.0.1:{free_port()}"
    unreachable = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--conform-engine", "llamacpp", "--conform-url", url
    )  # fmt: skip
    assert unreachable.ret == 2, unreachable.stdout.str() + unreachable.stderr.str()
    said = unreachable.stdout.str() + unreachable.stderr.str()
    assert f"conform: error: cannot reach {url}" in said and "Traceback" not in said


def test_users_can_write_plain_tests_against_a_stub_target(pytester, tmp_path) -> None:
    pytester.makepyfile(
        """
        def test_health(conform_runtime, conform_adapter):
            assert conform_runtime.run(conform_adapter.health()).ready
        """
    )
    report = tmp_path / "r.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "--conform-stub", "llamacpp", "--conform-report", str(report))
    result.assert_outcomes(passed=1)
    assert report.exists()


def test_bad_plugin_options_are_usage_errors(pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--conform-stub", "nosuch")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*no stub for 'nosuch'*"])


@pytest.mark.parametrize("workers", [None, 2])
def test_plugin_runs_the_features_and_user_tests_from_a_directory_outside_the_repo(
    tmp_path: Path, workers: int | None
) -> None:
    """After pip install, a user's repo runs the built-in features and its own tests, with and without xdist."""
    (tmp_path / "test_mine.py").write_text(
        "def test_my_engine_is_healthy(conform_runtime, conform_adapter):\n"
        "    assert conform_runtime.run(conform_adapter.health()).ready\n",
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--pyargs",
        "conform.features",
        "test_mine.py",
    ]
    command += ["--conform-stub", "echo", "--conform-report", str(report)]
    if workers:
        command += ["-n", str(workers)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(report.read_text())
    ids = {r["id"] for r in document["results"]}
    assert {"admission.stream", "ordering.indices", "mine.test_my_engine_is_healthy"} <= ids, sorted(ids)
    assert document["summary"]["failed"] == 0
