"""conform run and conform determinism reach a target through an HTTP forward proxy: the one named by
--proxy, else HTTP_PROXY minus NO_PROXY (read by the CLI, never by the adapters). Against loopback servers."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from conform.stubs import StubServer
from tests.helpers import CONFORM, ForwardProxy, forward_proxy

pytestmark = pytest.mark.slow

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


async def _conform(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """The CLI in a subprocess while this loop serves the stub and the proxy; its exit status and stderr."""
    clean = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}
    process = await asyncio.create_subprocess_exec(
        *CONFORM, *args, env={**clean, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


def _through(proxy: ForwardProxy, stub: StubServer) -> list[str]:
    return [url for url in proxy.seen if url.startswith(stub.url)]


@pytest.mark.parametrize(
    ("proxy_env", "flag", "proxied"),
    [
        ({"HTTP_PROXY": "{proxy}"}, False, True),
        ({"http_proxy": "{proxy}", "NO_PROXY": "127.0.0.1"}, False, False),
        ({"NO_PROXY": "127.0.0.1"}, True, True),  # --proxy applies to every target
    ],
    ids=["HTTP_PROXY", "NO_PROXY-bypass", "--proxy"],
)
async def test_conform_run_goes_through_the_proxy_it_is_given(
    proxy_env: dict[str, str], flag: bool, proxied: bool
) -> None:
    async with forward_proxy() as proxy, StubServer("llamacpp") as stub:
        env = {name: value.format(proxy=proxy.url) for name, value in proxy_env.items()}
        args = ["run", "--engine", "llamacpp", "--url", stub.url, "--checks", "admission.stream,ordering.indices"]
        code, stderr = await _conform(*args, *(["--proxy", proxy.url] if flag else []), env=env)
    assert code == 0, stderr
    seen = _through(proxy, stub)
    if proxied:
        assert f"{stub.url}/completion" in seen, proxy.seen
    else:
        assert seen == [], "NO_PROXY names the target: no request goes through the proxy"
    assert len(stub.state.generations) >= 2, "the checks reached the engine either way"


async def test_conform_determinism_goes_through_the_proxy() -> None:
    async with forward_proxy() as proxy, StubServer("llamacpp") as stub:
        args = ["determinism", "--engine", "llamacpp", "--url", stub.url, "--requests", "1", "--max-tokens", "4"]
        code, stderr = await _conform(
            *args, "--no-load", env={"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": proxy.url}
        )
    assert code == 0, stderr
    assert f"{stub.url}/completion" in _through(proxy, stub)


@pytest.mark.parametrize("given", ["localhost:3128", "socks5://127.0.0.1:1080"])
async def test_a_proxy_that_is_not_an_http_url_is_a_usage_error(given: str) -> None:
    code, stderr = await _conform(
        "run", "--engine", "llamacpp", "--url", "http://127.0.0.1:9", "--proxy", given, env={}
    )
    assert code == 2
    assert stderr.strip() == f"conform: error: --proxy: {given!r} is not a proxy URL (http://host:port)"


def test_the_adapters_never_read_the_proxy_variables() -> None:
    """Only the CLI and the plugin turn the environment into a ProxyConfig."""
    import inspect

    import conform.adapters._http as http_layer

    source = inspect.getsource(http_layer)
    assert "trust_env=False" in source and "os.environ" not in source and "getenv" not in source
    assert sys.modules["conform.adapters._http"] is http_layer
