"""The conform CLI as a user runs it: exit codes, one-line errors, and misbehaving targets caught."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from conform.adapters import engine_names
from conform.features import FEATURES_DIR
from conform.reports import validate_report
from conform.stubs import stub_engines
from tests.helpers import free_port, run_conform

pytestmark = pytest.mark.slow  # end to end: `conform` in a subprocess, a browser, whole runs


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    for fragment in fragments:
        assert fragment in lines[0]


def test_run_against_the_embedded_stubs_passes_and_prints_the_matrix(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    junit = tmp_path / "junit.xml"
    result = run_conform("run", "--report", str(report), "--junit", str(junit), "-v")  # -v: the matrix, piped too
    assert result.returncode == 0, result.stdout + result.stderr
    blocks = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("feature ")]
    header = [label for block in blocks for label in block]
    assert header == [f"{engine}@stub" for engine in stub_engines()], "every engine is a column"
    assert set(stub_engines()) == set(engine_names()), "every engine of the contract has a stub"
    for area in ("admission_stream", "cancel", "determinism", "error_taxonomy", "health_props", "ordering"):
        assert area in result.stdout
    # Anthropic's API has no seed, so a core check is skipped there: the honest verdict is "partial".
    assert "result: partial" in result.stdout
    document = json.loads(report.read_text())
    validate_report(document)
    assert document["summary"]["failed"] == 0 and document["summary"]["passed"] > 100
    skipped = [r for r in document["results"] if r["status"] == "skipped"]
    assert all(r["detail"].startswith("target lacks capability") for r in skipped)
    assert document["reproduce"].startswith("conform run --report")
    assert "<testsuite" in junit.read_text()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["run", "--engine", "nosuch", "--url", "http://127.0.0.1:1"],
            ["unknown engine 'nosuch'", "llamacpp"],
        ),
        (["run", "--engine", "llamacpp", "--url", "ftp://host"], ["bad URL 'ftp://host'"]),
        (["run", "--engine", "llamacpp", "--url", "http://:80"], ["bad URL"]),
        (["run", "--engine", "llamacpp", "--url", "http://h:99999"], ["port"]),
        (["run", "--engine", "llamacpp"], ["--engine and --url go together"]),
        (["run", "--url", "http://127.0.0.1:1"], ["--engine and --url go together"]),
        (["run", "--features", "/nonexistent/x.feature"], ["does not exist"]),
        (
            [
                "run",
                "--engine",
                "llamacpp",
                "--url",
                "http://127.0.0.1:1",
                "--api-key-env",
                "CONFORM_TEST_UNSET",
            ],
            ["CONFORM_TEST_UNSET", "not set"],
        ),
        (["run", "--timeout", "abc"], ["--timeout", "invalid float"]),
        (["stub", "nosuch"], ["no stub for engine 'nosuch'"]),
        (["stub", "llamacpp", "--script", "/nonexistent.json"], ["/nonexistent.json", "cannot read"]),
        (["bogus"], ["invalid choice"]),
        (["run", "--capabilities", "seed,telepathy"], ["--capabilities", "unknown capability 'telepathy'"]),
        (["run", "--exempt", "nosuch"], ["--exempt", "unknown capability 'nosuch'"]),
        (["run", "--vendor", "/nonexistent/vendor.json"], ["/nonexistent/vendor.json", "cannot read"]),
        (["run", "--workers", "0"], ["--workers must be at least 1"]),
        (["stub", "echo", "--token-delay-ms", "-1"], ["--token-delay-ms must be >= 0"]),
        (["report", "--verify", "/nonexistent/report.json"], ["/nonexistent/report.json", "cannot read"]),
        (["run", "--engine", "openai", "--url", "llama-swap://k@h:1"], ["bad URL", "http(s)://"]),
        (["run", "--request-extra", "cache_prompt"], ["--request-extra: 'cache_prompt' is not KEY=VALUE"]),
        (["run", "--request-extra", "n_probs:=two"], ["--request-extra: the value of 'n_probs' is not JSON"]),
        (
            ["determinism", "--engine", "llamacpp", "--url", "http://127.0.0.1:1", "--request-extra", "=1"],
            ["--request-extra: '=1' is not KEY=VALUE"],
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], fragments: list[str]) -> None:
    result = run_conform(*args, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_line_error(result.stderr, *fragments)


def test_unreachable_target_is_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_conform("run", "--engine", "llamacpp", "--url", url, timeout=60)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "cannot reach", url)


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("{not json", ["line 1", "not valid JSON"]),
        ('{"faults": [{"kind": "explode"}]}', ["faults.0", "explode"]),
        ('{"token_delay_ms": -1}', ["token_delay_ms"]),
        ('{"surprise": 1}', ["surprise"]),
    ],
)
def test_malformed_script_names_file_and_field(tmp_path: Path, content: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run_conform("stub", "llamacpp", "--script", str(path), timeout=60)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, str(path), *fragments)


def test_help_describes_every_command() -> None:
    result = run_conform("--help", timeout=60)
    assert result.returncode == 0
    for command in ("run", "determinism", "stub", "report", "diff"):
        assert command in result.stdout
    run_help = run_conform("run", "--help", timeout=60).stdout
    for flag in ("--engine", "--url", "--timeout", "--report", "--junit", "--api-key-env", "--tags"):
        assert flag in run_help


MISBEHAVIOURS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "missing final frame",
        {"faults": [{"kind": "missing_final"}]},
        "admission.stream",
        "without the final stop:true",
    ),
    (
        "duplicated token",
        {"faults": [{"kind": "duplicate_token", "at_token": 3}]},
        "ordering.indices",
        "token index 3 arrived twice",
    ),
    (
        "out-of-order index",
        {"faults": [{"kind": "reorder_tokens", "at_token": 4}]},
        "ordering.indices",
        "token index 5 was followed by 4",
    ),
    (
        "malformed JSON frame",
        {"faults": [{"kind": "malformed_json", "at_token": 1}]},
        "admission.stream",
        "frame 2 is not JSON",
    ),
    (
        "error inside a 200 stream",
        {"faults": [{"kind": "error_in_stream", "message": "CUDA out of memory"}]},
        "admission.stream",
        "engine_error (HTTP 200): error inside the stream: CUDA out of memory",
    ),
    (
        "non-SSE content type",
        {"faults": [{"kind": "content_type", "value": "application/json"}]},
        "admission.stream",
        "content type 'application/json'",
    ),
    (
        "health ready while requests fail 503",
        {"faults": [{"kind": "status", "status": 503, "message": "Loading model"}]},
        "health.ready_admits",
        "the engine reported ready, but a request failed: upstream_unavailable (HTTP 503)",
    ),
    (
        "5xx with an error body",
        {"faults": [{"kind": "status", "status": 500, "message": "kv cache corrupt"}]},
        "admission.stream",
        "answered 500: kv cache corrupt",
    ),
    (
        "generation continues after disconnect",
        {"token_delay_ms": 10, "faults": [{"kind": "ignore_disconnect"}]},
        "cancel.engine_side",
        "still processing",
    ),
    (
        "stalls forever before headers",
        {"faults": [{"kind": "stall", "phase": "before_headers"}]},
        "admission.stream",
        "got no response headers within the total deadline",
    ),
    (
        "stalls forever mid-stream",
        {"faults": [{"kind": "stall", "at_token": 2}]},
        "admission.stream",
        "deadline_unmet (HTTP 200): http://127.0.0.1",
    ),
]


@pytest.mark.parametrize(
    ("script", "check_id", "detail"),
    [pytest.param(script, check_id, detail, id=name) for name, script, check_id, detail in MISBEHAVIOURS],
)
def test_a_misbehaving_engine_is_caught(
    stub_process, tmp_path: Path, script: dict[str, Any], check_id: str, detail: str
) -> None:
    stub = stub_process(script)
    report = tmp_path / "report.json"
    started = time.monotonic()
    result = run_conform(
        "run",
        "--engine",
        "llamacpp",
        "--url",
        stub.url,
        "--timeout",
        "2",
        "--checks",
        ",".join(sorted({check_id, "admission.stream", "ordering.indices", "cancel.stream_stops"})),
        "--report",
        str(report),
        "--quiet",
        timeout=120,
    )
    assert time.monotonic() - started < 90, "a misbehaving engine must not make the run take long"
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    document = json.loads(report.read_text())
    validate_report(document)
    failed = {r["id"]: r["detail"] for r in document["results"] if r["status"] == "failed"}
    assert check_id in failed, f"{check_id} did not fail; failures: {failed}"
    assert detail in failed[check_id]
    assert f"FAILED llamacpp {check_id}: " in result.stdout
    assert document["result"] == "nonconformant"
    assert not [r for r in document["results"] if r["status"] == "error"], "a misbehaving engine is a failure"


def test_valid_wire_variants_pass_a_whole_run(stub_process, tmp_path: Path) -> None:
    """CRLF line ends, keep-alive comments, `data:` without a space, 1-byte chunks: all conforming."""
    framing = {"line_ending": "crlf", "space_after_colon": False, "keepalive_every": 1, "chunk_size": 1}
    stub = stub_process({"framing": framing, "token_delay_ms": 1})
    report = tmp_path / "report.json"
    result = run_conform("run", "--engine", "llamacpp", "--url", stub.url, "--report", str(report), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(report.read_text())
    assert document["summary"]["failed"] == 0 and document["summary"]["passed"] >= 10


def test_llama_swap_url_form_runs_and_masks_its_token(stub_process: Any, tmp_path: Path) -> None:
    stub = stub_process(engine="llamaswap")
    token = "lsw-token-0123456789"
    report = tmp_path / "report.json"
    url = stub.url.replace("http://", f"llama-swap://{token}@")
    result = run_conform(
        "run", "--engine", "llamaswap", "--url", url, "--tags", "not extended", "--report", str(report)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(report.read_text())
    assert token not in report.read_text() + result.stdout + result.stderr
    assert document["targets"][0]["url"].startswith("llama-swap://lsw…[fp:")
    assert "llama-swap://lsw…[fp:" in document["reproduce"]
    assert document["summary"]["passed"] > 5


def test_declared_capabilities_and_vendor_reach_the_report(stub_process: Any, tmp_path: Path) -> None:
    stub = stub_process({"token_delay_ms": 5})  # paced, so that the load of batch_invariance overlaps
    vendor = tmp_path / "vendor.json"
    vendor.write_text(json.dumps({"organization": "Example Inc.", "contact": ["conformance@example.com"]}))
    report = tmp_path / "report.json"
    result = run_conform(
        "run", "--engine", "llamacpp", "--url", stub.url, "--features", "features/determinism.feature",
        "--exempt", "seed", "--capabilities", "batch_invariance", "--vendor", str(vendor),
        "--insecure", "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: TLS certificates were NOT verified" in result.stderr
    document = json.loads(report.read_text())
    capabilities = document["targets"][0]["capabilities"]
    assert capabilities["source"] == "declared"
    assert capabilities["declared"] == ["batch_invariance"] and capabilities["exempt"] == ["seed"]
    assert "seed" in capabilities["unsupported"] and "batch_invariance" in capabilities["supported"]
    statuses = {r["id"]: (r["status"], r["detail"]) for r in document["results"]}
    assert statuses["determinism.repeat"] == ("skipped", "target lacks capability seed")
    assert document["implementation"]["organization"] == "Example Inc." and document["insecure"] is True


@pytest.mark.parametrize(
    ("option", "kind"),
    [
        ("--report", "file"),
        ("--html", "file"),
        ("--markdown", "file"),
        ("--junit", "file"),
        ("--alluredir", "folder"),
        ("--transcripts", "folder"),
    ],
)
def test_an_output_that_cannot_be_written_is_exit_2_before_the_run(tmp_path: Path, option: str, kind: str) -> None:
    """Below a file nothing can be written (root or not): told at once, in one line, and no check runs."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run_conform("run", option, str(blocker / "out"), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_line_error(result.stderr, option, "a-file is a file, so nothing can be written below it")
    assert "conform run —" not in result.stderr, "nothing started"
    wrong = run_conform("run", option, str(tmp_path if kind == "file" else blocker), timeout=60)
    assert wrong.returncode == 2
    assert_one_line_error(
        wrong.stderr, option, "is a folder, not a file" if kind == "file" else "is a file, not a folder"
    )


def test_determinism_outputs_are_checked_before_any_request(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for option in ("--report", "--record"):
        result = run_conform(
            "determinism", "--engine", "llamacpp", "--url", "http://127.0.0.1:1", option, str(blocker / "x"), timeout=60
        )
        assert result.returncode == 2 and "cannot reach" not in result.stderr, result.stderr
        assert_one_line_error(result.stderr, option, "is a file, so nothing can be written below it")


@pytest.mark.slow
def test_report_dash_is_json_on_stdout_and_a_device_is_written_in_place(tmp_path: Path) -> None:
    result = run_conform("run", "--checks", "ordering.indices", "--report", "-", timeout=300)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    validate_report(document)
    assert "result: conformant" in result.stderr, "the summary goes to stderr"
    device = tmp_path / "to-null"
    device.symlink_to("/dev/null")
    written = run_conform("run", "--checks", "ordering.indices", "--report", str(device), timeout=300)
    assert written.returncode == 0, written.stderr
    assert device.is_symlink() and Path("/dev/null").is_char_device(), "the device is written, never replaced"


def test_a_key_pasted_as_api_key_env_is_refused_without_being_printed() -> None:
    key = "sk-live-0123456789abcdefABCDEF"
    result = run_conform("run", "--engine", "llamacpp", "--url", "http://127.0.0.1:1", "--api-key-env", key)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "looks like a key itself (not printed; 30 characters)")
    assert key not in result.stderr + result.stdout and "0123456789" not in result.stderr


@pytest.mark.parametrize("written", ["llama.cpp", "LLAMACPP", "LlamaCpp", "llama-cpp"])
def test_engine_names_are_taken_as_people_write_them(stub_process, written: str) -> None:
    stub = stub_process({})
    result = run_conform(
        "run", "--engine", written, "--url", stub.url, "--checks", "ordering.indices", "-v", timeout=120
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "llamacpp" in result.stdout


def test_the_conventions_of_the_tools_users_know() -> None:
    version = run_conform("--version")
    assert version.returncode == 0 and re.fullmatch(r"conform \S+\n", version.stdout), version.stdout
    bare = run_conform()
    assert bare.returncode == 2 and bare.stdout.startswith("usage: conform") and "COMMAND" in bare.stdout
    assert "Traceback" not in bare.stderr
    run_help = run_conform("run", "--help")
    assert "Exit status: 0 no check failed" in " ".join(run_help.stdout.split())
    stub_help = " ".join(run_conform("stub", "--help").stdout.split())
    from conform.stubs.script import fault_kinds

    assert len(fault_kinds()) > 30 and all(kind in stub_help for kind in fault_kinds())


def test_the_users_mistakes_about_a_live_target_are_exit_2_with_a_hint(stub_process, tmp_path: Path) -> None:
    """A wrong --engine, an endpoint pasted as the URL, a model the engine refuses, a typo in the user's own
    step: each is told in one line before (or instead of) a verdict on the engine."""
    llamacpp, openai = stub_process({}), stub_process({}, "openai")
    wrong = run_conform("run", "--engine", "vllm", "--url", llamacpp.url)
    assert wrong.returncode == 2
    assert_one_line_error(wrong.stderr, "--engine vllm:", "does not answer as vllm", "try --engine llamacpp")
    endpoint = run_conform("run", "--engine", "llamacpp", "--url", llamacpp.url + "/completion")
    assert endpoint.returncode == 2
    assert_one_line_error(endpoint.stderr, "is an endpoint (/completion)", f"try --url {llamacpp.url}")
    model = run_conform("run", "--engine", "openai", "--url", openai.url, "--model", "nosuchmodel")
    assert model.returncode == 2
    assert_one_line_error(model.stderr, "--model nosuchmodel: the engine refuses it", "it serves: stub-model")
    feature = tmp_path / "mine.feature"
    feature.write_text(
        (FEATURES_DIR / "ordering.feature").read_text().replace("I stream a completion", "I strem a completion")
    )
    typo = run_conform("run", "--engine", "llamacpp", "--url", llamacpp.url, "--features", str(feature))
    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert typo.stderr.splitlines()[-1].startswith("conform: error: --features: a step has no definition (a typo?)")
    assert 'When "I strem a completion of 32 tokens"' in typo.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--concurrency", "100000", "--concurrency must be from 1 to 256, got 100,000"),
        ("--requests", "0", "--requests must be from 1 to 100,000, got 0"),
        ("--repeat", "20000", "--repeat must be from 1 to 10,000"),
    ],
)
def test_determinism_numbers_out_of_bounds_are_exit_2_at_once(option: str, value: str, message: str) -> None:
    result = run_conform("determinism", "--engine", "llamacpp", "--url", "http://127.0.0.1:1", option, value)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, message)
