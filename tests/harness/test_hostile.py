"""Every fault against every engine it applies to: one exact error kind, in bounded time.

The table is the contract of the error taxonomy for broken engines (README,
"Hostile engines"): each scripted fault of the stub Script, played in each
engine's own wire format, must end the request as exactly one error kind —
never a hang, never a crash, never a success.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from conform.adapters import (
    AdapterOptions,
    Capability,
    ErrorKind,
    RetryPolicy,
    TaskRequest,
    Timeouts,
    create_adapter,
    engines,
)
from conform.harness.stream import collect
from conform.stubs import Script, StubServer, stub_engines

IDLE_S = 0.4
TOTAL_S = 1.2
BUDGET_S = TOTAL_S + 3.0
"""No case may take longer than its total deadline plus setup: the wall time is bounded."""

FAULTS: list[tuple[str, dict[str, Any], ErrorKind]] = [
    ("error_in_stream", {"kind": "error_in_stream", "at_token": 2}, ErrorKind.ENGINE_ERROR),
    ("malformed_json", {"kind": "malformed_json", "at_token": 2}, ErrorKind.PROTOCOL_VIOLATION),
    ("content_type", {"kind": "content_type", "value": "text/html"}, ErrorKind.PROTOCOL_VIOLATION),
    ("non_utf8", {"kind": "non_utf8", "at_token": 2}, ErrorKind.PROTOCOL_VIOLATION),
    ("oversized_frame", {"kind": "oversized_frame", "at_token": 1, "size": 2_500_000}, ErrorKind.PROTOCOL_VIOLATION),
    ("close_early", {"kind": "close_early", "at_token": 2}, ErrorKind.WORKER_RESET),
    ("reset", {"kind": "reset", "at_token": 2}, ErrorKind.WORKER_RESET),
    ("missing_final", {"kind": "missing_final"}, ErrorKind.PROTOCOL_VIOLATION),
    ("legacy_error_line", {"kind": "legacy_error_line", "at_token": 2}, ErrorKind.PROTOCOL_VIOLATION),
    ("stall_before_headers", {"kind": "stall", "phase": "before_headers"}, ErrorKind.DEADLINE_UNMET),
    ("stall_after_headers", {"kind": "stall", "phase": "after_headers"}, ErrorKind.DECODE_TIMEOUT),
    ("stall_mid_stream", {"kind": "stall", "phase": "mid_stream", "at_token": 2}, ErrorKind.DECODE_TIMEOUT),
    ("slow_loris", {"kind": "slow_loris", "bytes_per_second": 20}, ErrorKind.DEADLINE_UNMET),
    ("endless", {"kind": "endless"}, ErrorKind.PROTOCOL_VIOLATION),
    *(
        (f"status_{status}", {"kind": "status", "status": status, "message": message}, kind)
        for status, message, kind in [
            (401, "invalid key", ErrorKind.AUTH),
            (403, "forbidden", ErrorKind.AUTH),
            (404, "no such model", ErrorKind.NOT_FOUND),
            (408, "request timeout", ErrorKind.UPSTREAM_UNAVAILABLE),
            (413, "request too large", ErrorKind.INVALID_REQUEST),
            (422, "unprocessable", ErrorKind.INVALID_REQUEST),
            (429, "too many requests", ErrorKind.RATE_LIMITED),
            (500, "internal failure", ErrorKind.ENGINE_ERROR),
            (502, "bad gateway", ErrorKind.UPSTREAM_UNAVAILABLE),
            (503, "Loading model", ErrorKind.UPSTREAM_UNAVAILABLE),
            (504, "gateway timeout", ErrorKind.UPSTREAM_UNAVAILABLE),
            (529, "overloaded", ErrorKind.OVERLOADED),
        ]
    ),
]

NEEDS_END_MARKER = {"missing_final", "legacy_error_line"}
"""Only an engine whose last frame says it is the last can have it missing (Triton cannot)."""


def _cases() -> list[Any]:
    cases = []
    for engine in stub_engines():
        has_end = Capability.END_MARKER in engines()[engine].capabilities
        for name, fault, kind in FAULTS:
            if name in NEEDS_END_MARKER and not has_end:
                continue
            cases.append(pytest.param(engine, fault, kind, id=f"{engine}-{name}"))
    return cases


@pytest.mark.parametrize(("engine", "fault", "kind"), _cases())
async def test_each_fault_is_one_error_kind_in_bounded_time(
    engine: str, fault: dict[str, Any], kind: ErrorKind
) -> None:
    script = Script.model_validate({"faults": [fault]})
    options = AdapterOptions(
        timeouts=Timeouts(connect=1.0, total=TOTAL_S, idle=IDLE_S),
        retry=RetryPolicy.none(),
        max_event_bytes=1024 * 1024,
    )
    started = time.monotonic()
    async with StubServer(engine, script) as stub:
        adapter = create_adapter(engine, stub.url, options)
        record = await collect(adapter, TaskRequest(prompt="The lighthouse keeper found a bottle.", max_tokens=8))
        await adapter.aclose()
    elapsed = time.monotonic() - started
    assert record.error is not None, f"{engine} {fault['kind']}: the request succeeded ({len(record.tokens)} tokens)"
    assert record.error.kind is kind, f"{engine} {fault['kind']}: {record.error}"
    assert record.error.message, "a verdict says what happened"
    assert elapsed < BUDGET_S, f"{engine} {fault['kind']} took {elapsed:.1f} s"
