"""--request-extra KEY=VALUE / KEY:=JSON adds fields to every generation request, on run and determinism, and
the report says which (issue #20)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conform.harness.targets import TargetError, request_extra
from conform.reports.schema import validate_report
from conform.stubs import StubServer
from tests.helpers import CONFORM


def test_items_are_strings_or_json_and_a_later_one_wins() -> None:
    fields = request_extra(["mode=fast", "cache_prompt:=false", 'kwargs:={"a": [1, 2]}', "mode=slow", "empty="])
    assert fields == {"mode": "slow", "cache_prompt": False, "kwargs": {"a": [1, 2]}, "empty": ""}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("novalue", "'novalue' is not KEY=VALUE (a string) or KEY:=JSON"),
        ("=x", "'=x' is not KEY=VALUE"),
        (":=1", "':=1' is not KEY=VALUE"),
        ("n:={", "the value of 'n' is not JSON"),
    ],
)
def test_a_malformed_item_is_named(item: str, message: str) -> None:
    with pytest.raises(TargetError, match=r"^--request-extra: ") as raised:
        request_extra([item])
    assert message in str(raised.value)


async def _conform(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *CONFORM, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


EXTRA = ["--request-extra", "mirostat:=0", "--request-extra", 'chat_template_kwargs:={"enable_thinking": false}']
EXPECTED = {"mirostat": 0, "chat_template_kwargs": {"enable_thinking": False}}


@pytest.mark.slow
async def test_conform_run_sends_the_fields_in_every_generation_and_reports_them(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    async with StubServer("llamacpp") as stub:
        args = ["run", "--engine", "llamacpp", "--url", stub.url, "--checks", "ordering.indices,limits.max_tokens"]
        code, stderr = await _conform(*args, *EXTRA, "--report", str(report))
        bodies = [body for _, path, body in stub.state.requests if path == "/completion"]
    assert code == 0, stderr
    assert len(bodies) >= 4 and all(EXPECTED.items() <= body.items() for body in bodies)
    document = json.loads(report.read_text())
    validate_report(document)
    assert document["targets"][0]["request_extra"] == EXPECTED


@pytest.mark.slow
async def test_conform_determinism_sends_the_fields_in_every_generation(tmp_path: Path) -> None:
    report = tmp_path / "determinism.json"
    async with StubServer("openai") as stub:
        args = ["determinism", "--engine", "openai", "--url", stub.url, "--requests", "2", "--max-tokens", "4"]
        code, stderr = await _conform(*args, *EXTRA, "--report", str(report), "--quiet", "--no-load")
        bodies = [body for _, path, body in stub.state.requests if path.endswith("completions")]
    assert code == 0, stderr
    assert bodies and all(EXPECTED.items() <= body.items() for body in bodies)
    assert json.loads(report.read_text())["targets"][0]["request_extra"] == EXPECTED
