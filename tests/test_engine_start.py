"""A real engine that dies before it is ready fails its fixture at once: how it ended, and its log's tail."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.helpers import PORTABLE_CMAKE_ARGS, EngineDied, start_engine

_NEVER_READY = "http://127.0.0.1:9/health"
"""Nothing answers there: only the process's end can stop the wait early."""

_DIES_BY_SIGILL = (
    "import os, signal, sys\n"
    "print('load_backend: loaded CPU backend from libggml-cpu.so', flush=True)\n"
    "os.kill(os.getpid(), signal.SIGILL)\n"
)


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", _DIES_BY_SIGILL],
        # A wrapper script reports its child's signal as 128 + N (132 for SIGILL), as llama-cpp-server's does.
        ["sh", "-c", f'{sys.executable} -c "$0"; exit $?', _DIES_BY_SIGILL],
    ],
    ids=["signal", "wrapper-status-132"],
)
def test_an_engine_killed_by_sigill_fails_at_once_naming_the_signal_and_the_fix(
    tmp_path: Path, command: list[str]
) -> None:
    log = tmp_path / "engine.log"
    started = time.monotonic()
    with pytest.raises(EngineDied) as died:
        start_engine("llama-server", command, _NEVER_READY, log, timeout_s=600)
    assert time.monotonic() - started < 300, "the end of the process stops the wait, not the readiness timeout"
    message = str(died.value)
    assert message.startswith("llama-server was killed by SIGILL")
    assert "instructions this CPU does not run" in message and PORTABLE_CMAKE_ARGS in message
    assert "load_backend: loaded CPU backend from libggml-cpu.so" in message, "the log's tail is in the message"


def test_an_engine_that_exits_says_its_status_and_log(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    program = "import sys\nprint('error: failed to load model', flush=True)\nsys.exit(1)\n"
    with pytest.raises(EngineDied) as died:
        start_engine("llama-server", [sys.executable, "-c", program], _NEVER_READY, log, timeout_s=600)
    message = str(died.value)
    assert message.startswith("llama-server exited with status 1 before it was ready")
    assert "error: failed to load model" in message and "SIGILL" not in message
