"""The shared HTTP layer: classification, retries before the first byte only, backoff, redaction."""

from __future__ import annotations

import contextlib
import gzip
import json

import pytest
from aiohttp import web

from conform.adapters import (
    AdapterOptions,
    ErrorKind,
    LlamaCppAdapter,
    ProxyConfig,
    RetryPolicy,
    TaskRequest,
    Timeouts,
    WorkerError,
)
from conform.adapters._http import HttpClient, classify_status, parse_retry_after
from conform.stubs import Script, StubServer
from tests.helpers import Handler, forward_proxy, http_server, streaming

SECRET = "sk-test-0123456789abcdef"


@pytest.mark.parametrize(
    ("status", "message", "kind", "retriable"),
    [
        (400, "bad", ErrorKind.INVALID_REQUEST, False),
        (422, "validation", ErrorKind.INVALID_REQUEST, False),
        (401, "no", ErrorKind.AUTH, False),
        (403, "no", ErrorKind.AUTH, False),
        (404, "no", ErrorKind.NOT_FOUND, False),
        (429, "slow down", ErrorKind.RATE_LIMITED, True),
        (500, "oops", ErrorKind.ENGINE_ERROR, True),
        (501, "not supported", ErrorKind.INVALID_REQUEST, False),
        (502, "bad gateway", ErrorKind.UPSTREAM_UNAVAILABLE, True),
        (503, "Loading model", ErrorKind.UPSTREAM_UNAVAILABLE, True),
        (503, "server busy, please try again", ErrorKind.OVERLOADED, True),
        (504, "gateway timeout", ErrorKind.UPSTREAM_UNAVAILABLE, True),
        (529, "Overloaded", ErrorKind.OVERLOADED, True),
    ],
)
def test_status_classification(status: int, message: str, kind: ErrorKind, retriable: bool) -> None:
    assert classify_status(status, message) is kind
    assert WorkerError(kind, message, status=status).retriable is retriable


def test_retry_after_headers() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after({}) is None


@contextlib.asynccontextmanager
async def _client(handler: Handler, **kwargs):
    """An HttpClient on the production path, talking to a loopback server that answers with `handler`."""
    async with http_server(handler) as url:
        client = HttpClient(url, **kwargs)
        try:
            yield client
        finally:
            await client.aclose()


def _counting(answer, calls: list[web.Request]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        calls.append(request)
        return answer(len(calls))

    return handle


async def test_retriable_status_is_retried_until_success() -> None:
    calls: list[web.Request] = []

    def answer(n: int) -> web.Response:
        if n < 3:
            return web.json_response({"error": {"message": "Loading model"}}, status=503)
        return web.json_response({"ok": True})

    async with _client(_counting(answer, calls), retry=RetryPolicy(base=0.001, seed=1)) as client:
        reply = await client.request("GET", "/x")
    assert reply.json() == {"ok": True}
    assert len(calls) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_non_retriable_status_is_tried_once(status: int) -> None:
    calls: list[web.Request] = []
    handler = _counting(lambda n: web.json_response({"error": {"message": "no"}}, status=status), calls)
    async with _client(handler, retry=RetryPolicy(base=0.001)) as client:
        with pytest.raises(WorkerError):
            await client.request("GET", "/x")
    assert len(calls) == 1


async def test_attempts_are_bounded() -> None:
    calls: list[web.Request] = []
    handler = _counting(lambda n: web.json_response({"error": {"message": "down"}}, status=500), calls)
    async with _client(handler, retry=RetryPolicy(attempts=4, base=0.001)) as client:
        with pytest.raises(WorkerError) as raised:
            await client.request("GET", "/x")
    assert raised.value.kind is ErrorKind.ENGINE_ERROR
    assert len(calls) == 4


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_redirect_is_reported_once_naming_where_it_points(status: int, streamed: bool) -> None:
    calls: list[web.Request] = []
    where = "https://gateway.example/login?next=/completion"
    handler = _counting(lambda n: web.Response(status=status, headers={"Location": where}), calls)
    async with _client(handler, retry=RetryPolicy(base=0.001)) as client:
        with pytest.raises(WorkerError) as raised:
            if streamed:
                async with client.open_stream("POST", "/completion", json_body={"prompt": "x"}):
                    pass
            else:
                await client.request("POST", "/completion", json_body={"prompt": "x"})
    assert len(calls) == 1, "a redirect is never retried"
    assert raised.value.kind is ErrorKind.INVALID_REQUEST and not raised.value.retriable
    assert raised.value.status == status
    assert where in raised.value.message and "redirect" in raised.value.message


def test_backoff_honours_retry_after_and_is_seeded() -> None:
    client = HttpClient("http://127.0.0.1:9", retry=RetryPolicy(seed=3))
    other = HttpClient("http://127.0.0.1:9", retry=RetryPolicy(seed=3))
    assert client._backoff(0, 0.25) == 0.25
    sleeps = [client._backoff(n, None) for n in range(6)]
    assert sleeps == [other._backoff(n, None) for n in range(6)], "the same seed gives the same jitter"
    assert all(0 <= s <= min(2.0, 0.1 * 2**n) for n, s in enumerate(sleeps)), "full jitter under the cap"
    assert len(set(sleeps)) == len(sleeps), "jitter: no two draws alike"


async def test_no_retry_when_the_retry_would_outlive_the_deadline() -> None:
    calls: list[web.Request] = []
    handler = _counting(
        lambda n: web.json_response({"error": {"message": "later"}}, status=429, headers={"retry-after": "60"}), calls
    )
    async with _client(handler, timeouts=Timeouts(total=1.0)) as client:
        with pytest.raises(WorkerError) as raised:
            await client.request("GET", "/x")
    assert raised.value.kind is ErrorKind.RATE_LIMITED and raised.value.retry_after == 60
    assert len(calls) == 1


async def test_a_started_stream_is_never_replayed() -> None:
    script = Script.model_validate({"faults": [{"kind": "close_early", "at_token": 1}]})
    async with StubServer("llamacpp", script) as stub:
        adapter = LlamaCppAdapter(stub.url, AdapterOptions(retry=RetryPolicy(base=0.001)))
        with pytest.raises(WorkerError) as raised:
            async with contextlib.aclosing(adapter.submit(TaskRequest(prompt="x", max_tokens=5))) as events:
                async for _ in events:
                    pass
        await adapter.aclose()
    assert raised.value.kind is ErrorKind.WORKER_RESET
    assert len(stub.state.generations) == 1


async def test_failing_first_attempts_before_the_stream_are_retried() -> None:
    script = Script.model_validate({"faults": [{"kind": "status", "status": 503, "times": 2}]})
    async with StubServer("llamacpp", script) as stub:
        adapter = LlamaCppAdapter(stub.url, AdapterOptions(retry=RetryPolicy(base=0.001)))
        async with contextlib.aclosing(adapter.submit(TaskRequest(prompt="x", max_tokens=3))) as events:
            received = [e async for e in events]
        await adapter.aclose()
    assert len(stub.state.generations) == 3
    assert len(received) == 6  # Started, 3 tokens, Metrics, End


async def test_connection_refused_is_upstream_unavailable() -> None:
    client = HttpClient("http://127.0.0.1:9", retry=RetryPolicy.none())
    with pytest.raises(WorkerError) as raised:
        await client.request("GET", "/health")
    await client.aclose()
    assert raised.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE and raised.value.status is None


async def test_a_secret_echoed_by_the_engine_is_redacted() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        echoed = request.headers["authorization"]
        return web.json_response({"error": {"message": f"bad credentials: {echoed}"}}, status=401)

    async with http_server(handler) as url:
        adapter = LlamaCppAdapter(url, AdapterOptions(api_key=SECRET))
        with pytest.raises(WorkerError) as raised:
            await adapter.http.request("GET", "/props")
        await adapter.aclose()
    text = f"{raised.value} {raised.value!r} {raised.value.message}"
    assert SECRET not in text
    assert "[fp:" in text, "the secret is replaced by a fingerprint, not dropped silently"


async def test_in_stream_error_echoing_the_secret_is_redacted() -> None:
    body = "data: " + json.dumps({"error": {"code": 500, "message": f"key {SECRET} rejected"}}) + "\n\n"
    async with http_server(streaming(body.encode())) as url:
        adapter = LlamaCppAdapter(url, AdapterOptions(api_key=SECRET))
        with pytest.raises(WorkerError) as raised:
            async with contextlib.aclosing(adapter.submit(TaskRequest(prompt="x"))) as events:
                async for _ in events:
                    pass
        await adapter.aclose()
    assert raised.value.kind is ErrorKind.ENGINE_ERROR
    assert SECRET not in str(raised.value)


async def test_a_header_that_cannot_be_sent_is_refused_by_name_without_its_value() -> None:
    secret = "sk-line\nbreak-0123456789"
    async with http_server(streaming(b"{}", "application/json")) as url:
        adapter = LlamaCppAdapter(url, AdapterOptions(api_key=secret, retry=RetryPolicy.none()))
        with pytest.raises(WorkerError) as raised:
            await adapter.http.request("GET", "/props")
        await adapter.aclose()
    assert raised.value.kind is ErrorKind.INVALID_REQUEST
    assert "Authorization" in raised.value.message
    assert "sk-line" not in str(raised.value) and "break-0123" not in str(raised.value)


async def test_a_compressed_stream_is_a_protocol_violation_naming_the_encoding() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.headers["Accept-Encoding"] == "identity", "a stream asks for an unencoded body"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"})
        await response.prepare(request)
        await response.write(gzip.compress(b"data: {}\n\n"))
        return response

    async with _client(handler) as client:
        with pytest.raises(WorkerError) as raised:
            async with client.open_stream("POST", "/completion", json_body={}):
                pass
    assert raised.value.kind is ErrorKind.PROTOCOL_VIOLATION and "'gzip'" in raised.value.message


async def test_a_compressed_whole_body_is_read_as_sent() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.json_response({"status": "ok", "padding": "x" * 2000})
        response.enable_compression()
        return response

    async with _client(handler) as client:
        reply = await client.request("GET", "/health")
    assert reply.json()["status"] == "ok"


async def test_requests_name_conform_as_their_user_agent() -> None:
    agents: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        agents.append(request.headers.get("User-Agent", ""))
        return web.json_response({})

    async with _client(handler) as client:
        await client.request("GET", "/health")
    assert agents[0].startswith("conform")


@pytest.mark.parametrize("through_proxy", [True, False])
async def test_requests_go_through_the_proxy_the_options_name(through_proxy: bool) -> None:
    async with forward_proxy() as proxy, http_server(streaming(b'{"ok": true}', "application/json")) as url:
        config = ProxyConfig(http=proxy.url, no_proxy=None if through_proxy else "127.0.0.1")
        client = HttpClient(url, proxy=config)
        try:
            reply = await client.request("GET", "/health")
            async with client.open_stream("POST", "/completion", json_body={}) as stream:
                body = b"".join([chunk async for chunk in stream.chunks()])
        finally:
            await client.aclose()
    assert reply.json() == {"ok": True} and body == b'{"ok": true}'
    expected = [f"{url}/health", f"{url}/completion"] if through_proxy else []
    assert proxy.seen == expected


@pytest.mark.parametrize(
    ("config", "url", "expected"),
    [
        (ProxyConfig(http="http://p:3128"), "http://engine:8080", "http://p:3128"),
        (ProxyConfig(http="http://p:3128"), "https://engine", None),
        (ProxyConfig(https="http://p:3128"), "https://engine", "http://p:3128"),
        (ProxyConfig(http="http://p:3128", no_proxy="engine"), "http://engine:8080", None),
        (ProxyConfig(http="http://p:3128", no_proxy=".internal,localhost"), "http://a.internal", None),
        (ProxyConfig(http="http://p:3128", no_proxy=".internal"), "http://public.example", "http://p:3128"),
        (ProxyConfig(http="http://p:3128", no_proxy="*"), "http://anything", None),
        (ProxyConfig.everywhere("http://p:3128"), "https://engine", "http://p:3128"),
    ],
)
def test_proxy_choice_follows_scheme_and_no_proxy(config: ProxyConfig, url: str, expected: str | None) -> None:
    assert config.for_url(url) == expected


def test_proxy_settings_come_from_the_conventional_variables() -> None:
    environ = {"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:2", "HTTPS_PROXY": "http://s:3"}
    assert ProxyConfig.from_environ(environ) == ProxyConfig(http="http://lower:1", https="http://s:3")
    assert ProxyConfig.from_environ({}) == ProxyConfig()
