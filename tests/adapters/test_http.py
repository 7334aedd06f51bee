"""The shared HTTP layer: classification, retries before the first byte only, backoff, redaction."""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest

from adapters import (
    AdapterOptions,
    ErrorKind,
    LlamaCppAdapter,
    RetryPolicy,
    TaskRequest,
    Timeouts,
    WorkerError,
)
from adapters._http import HttpClient, classify_status, parse_retry_after
from stubs import Script, StubServer

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


def _client(handler, **kwargs) -> HttpClient:
    return HttpClient("http://engine.test", transport=httpx.MockTransport(handler), **kwargs)


async def test_retriable_status_is_retried_until_success() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": {"message": "Loading model"}})
        return httpx.Response(200, json={"ok": True})

    client = _client(handler, retry=RetryPolicy(base=0.001, seed=1))
    reply = await client.request("GET", "/x")
    await client.aclose()
    assert reply.json() == {"ok": True}
    assert len(calls) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_non_retriable_status_is_tried_once(status: int) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, json={"error": {"message": "no"}})

    client = _client(handler, retry=RetryPolicy(base=0.001))
    with pytest.raises(WorkerError):
        await client.request("GET", "/x")
    await client.aclose()
    assert len(calls) == 1


async def test_attempts_are_bounded() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500, json={"error": {"message": "down"}})

    client = _client(handler, retry=RetryPolicy(attempts=4, base=0.001))
    with pytest.raises(WorkerError) as raised:
        await client.request("GET", "/x")
    await client.aclose()
    assert raised.value.kind is ErrorKind.ENGINE_ERROR
    assert len(calls) == 4


async def test_retry_after_is_honoured_and_backoff_is_seeded() -> None:
    sleeps: list[float] = []
    client = _client(lambda r: httpx.Response(200), retry=RetryPolicy(seed=3))
    other = _client(lambda r: httpx.Response(200), retry=RetryPolicy(seed=3))
    assert client._backoff(0, 0.25) == 0.25
    sleeps = [client._backoff(n, None) for n in range(6)]
    assert sleeps == [other._backoff(n, None) for n in range(6)], "the same seed gives the same jitter"
    assert all(0 <= s <= min(2.0, 0.1 * 2**n) for n, s in enumerate(sleeps)), "full jitter under the cap"
    await client.aclose()
    await other.aclose()


async def test_no_retry_when_the_retry_would_outlive_the_deadline() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(429, headers={"retry-after": "60"}, json={"error": {"message": "later"}})

    client = _client(handler, timeouts=Timeouts(total=1.0))
    with pytest.raises(WorkerError) as raised:
        await client.request("GET", "/x")
    await client.aclose()
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
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["authorization"]
        return httpx.Response(401, json={"error": {"message": f"bad credentials: {echoed}"}})

    adapter = LlamaCppAdapter(
        "http://engine.test", AdapterOptions(api_key=SECRET, transport=httpx.MockTransport(handler))
    )
    with pytest.raises(WorkerError) as raised:
        await adapter.http.request("GET", "/props")
    await adapter.aclose()
    text = f"{raised.value} {raised.value!r} {raised.value.message}"
    assert SECRET not in text
    assert "[fp:" in text, "the secret is replaced by a fingerprint, not dropped silently"


async def test_in_stream_error_echoing_the_secret_is_redacted() -> None:
    body = "data: " + json.dumps({"error": {"code": 500, "message": f"key {SECRET} rejected"}}) + "\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())

    adapter = LlamaCppAdapter(
        "http://engine.test", AdapterOptions(api_key=SECRET, transport=httpx.MockTransport(handler))
    )
    with pytest.raises(WorkerError) as raised:
        async with contextlib.aclosing(adapter.submit(TaskRequest(prompt="x"))) as events:
            async for _ in events:
                pass
    await adapter.aclose()
    assert raised.value.kind is ErrorKind.ENGINE_ERROR
    assert SECRET not in str(raised.value)
