"""Fixtures for the repo's own tests: standalone stub processes and a real llama.cpp server."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.helpers import (
    CHATML_TOOLS,
    CONFORM,
    LLAMACPP_KEY,
    RunningProcess,
    previous_llamacpp_binary,
    start_llamacpp,
    start_triton,
)

# Everywhere: derandomized and without a deadline (shared 2-core machines, so no "too slow" health check by
# chance); `HYPOTHESIS_PROFILE=fuzz` for a long run, `HYPOTHESIS_PROFILE=default` for hypothesis' own.
settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.register_profile("fuzz", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def stub_process(tmp_path: Path) -> Iterator[Callable[..., RunningProcess]]:
    """Factory: start `conform stub llamacpp --port 0 [flags] [--script ...]` and return its URL (first stdout line)."""
    started: list[RunningProcess] = []

    def start(script: dict[str, Any] | None = None, engine: str = "llamacpp", *flags: str) -> RunningProcess:
        args = [*CONFORM, "stub", engine, "--port", "0", *flags]
        if script is not None:
            path = tmp_path / f"script-{len(started)}.json"
            path.write_text(json.dumps(script), encoding="utf-8")
            args += ["--script", str(path)]
        log = tmp_path / f"stub-{len(started)}.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
        assert process.stdout is not None
        running = RunningProcess(process, process.stdout.readline().strip())
        started.append(running)
        if not running.url.startswith("http://"):
            pytest.fail(f"conform stub did not print its URL first; got {running.url!r}; stderr: {log.read_text()}")
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    """A real llama.cpp server with the gemma 270M model, 2 slots, rendering chats (tools too) with the
    ChatML tools template, shared by the session."""
    server = start_llamacpp(tmp_path_factory.mktemp("llamacpp") / "server.log", chat_template=CHATML_TOOLS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llamacpp_previous_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    """The previous llama.cpp build (tests/data/llamacpp-previous.txt), started as llamacpp_server is: the old
    side of the real upgrade."""
    binary = previous_llamacpp_binary()
    log = tmp_path_factory.mktemp("llamacpp-previous") / "server.log"
    server = start_llamacpp(log, chat_template=CHATML_TOOLS, binary=binary)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llamacpp_keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    """A second real llama.cpp server, started with --api-key LLAMACPP_KEY (for auth.required)."""
    server = start_llamacpp(tmp_path_factory.mktemp("llamacpp-keyed") / "server.log", api_key=LLAMACPP_KEY)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    """A real Triton server (PyTriton, Python 3.12) serving the decoupled model `tiny`, shared by the session."""
    server = start_triton(tmp_path_factory.mktemp("triton") / "server.log")
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A real engine's tests are all slow."""
    for item in items:
        if item.get_closest_marker("real_engine") is not None:
            item.add_marker(pytest.mark.slow)
