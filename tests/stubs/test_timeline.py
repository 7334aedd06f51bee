"""A stub's timeline: when it really wrote each token, the ground truth of a latency measurement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from conform.adapters import LlamaCppAdapter, TaskRequest
from conform.harness.stream import collect
from conform.stubs import Script, StubServer, TimelineError, load_timeline
from tests.helpers import run_conform

DELAY_S = 0.005


async def test_each_token_is_stamped_when_written_never_before_it_was_due() -> None:
    async with StubServer("llamacpp", Script(token_delay_ms=DELAY_S * 1000), keep_timeline=True) as stub:
        adapter = LlamaCppAdapter(stub.url)
        try:
            record = await collect(adapter, TaskRequest(prompt="timeline", max_tokens=6, seed=1))
        finally:
            await adapter.aclose()
    assert record.error is None
    (generation,) = stub.timeline().generations
    assert generation.prompt == "timeline"
    assert len(generation.written_at) == len(record.tokens) == 6
    for k, written in enumerate(generation.written_at):
        assert written >= generation.started_at + DELAY_S * (k + 1) - 1e-6, f"token {k} written before it was due"
    # The client's stamps (the kernel's receive times on Linux) follow the stub's writes, on the same clock.
    for token, written in zip(record.tokens, generation.written_at, strict=True):
        assert 0 <= token.at - written < 0.05, (token.at, written)


async def test_a_stub_keeps_no_timeline_unless_asked() -> None:
    async with StubServer("llamacpp", Script(token_delay_ms=1)) as stub:
        adapter = LlamaCppAdapter(stub.url)
        try:
            await collect(adapter, TaskRequest(prompt="none", max_tokens=3))
        finally:
            await adapter.aclose()
    (generation,) = stub.timeline().generations
    assert generation.written_at == []


def test_conform_stub_writes_its_timeline_when_stopped(stub_process: Any, tmp_path: Path) -> None:
    path = tmp_path / "out" / "timeline.json"
    stub = stub_process({"token_delay_ms": 2}, "llamacpp", "--timeline", str(path))
    body = {"prompt": "cli", "n_predict": 4, "stream": True}
    response = httpx.post(stub.url + "/completion", json=body, timeout=10)
    assert response.status_code == 200 and response.text.count("data: ") == 5
    assert not path.exists(), "written when the stub stops, not before"
    stub.stop()
    timeline = load_timeline(path)
    assert timeline.engine == "llamacpp"
    (generation,) = timeline.generations
    assert generation.prompt == "cli" and len(generation.written_at) == 4
    assert generation.written_at == sorted(generation.written_at)
    assert generation.written_at[0] >= generation.started_at + 0.002


def test_a_directory_as_the_timeline_is_a_usage_error(tmp_path: Path) -> None:
    result = run_conform("stub", "llamacpp", "--port", "0", "--timeline", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"conform: error: --timeline {tmp_path} is a directory, not a file"


def test_a_file_that_is_not_a_timeline_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "timeline.json"
    path.write_text('{"engine": "llamacpp"}')
    with pytest.raises(TimelineError, match=r"timeline.json: not a stub timeline \(") as raised:
        load_timeline(path)
    assert "\n" not in str(raised.value)
