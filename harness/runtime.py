"""One scenario's world: its event loop, its target (a live URL or a freshly started stub), its adapter.

Steps are synchronous (pytest-bdd); they call ``runtime.run(coro)``, which runs
the coroutine on the scenario's one ``asyncio.Runner``. A stub lives on that
same loop, so it serves requests exactly while a step awaits them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, TypeVar

from conform.adapters import (
    AdapterOptions,
    HttpAdapter,
    Redactor,
    RetryPolicy,
    TaskRequest,
    Timeouts,
    Transcript,
    create_adapter,
)
from conform.stubs import Script, StubServer

from .probe import TargetProfile
from .stream import StreamRecord, collect
from .targets import Target
from .timing import StreamTiming, stream_timing

__all__ = ["ScenarioRuntime", "adapter_options", "transcript_name"]

T = TypeVar("T")


_STUB_RETRY = RetryPolicy(base=0.002, cap=0.01)


def transcript_name(*parts: str) -> str:
    """A transcript's file name from what a user looks for: the check id (or request id) first, then where it
    ran: ``tools.call[stream]--llamacpp@stub.ndjson``. Path separators and spaces become ``_``."""
    name = "--".join(parts)
    return "".join(c if c.isalnum() or c in "._-[]@" else "_" for c in name) + ".ndjson"


def adapter_options(target: Target, *, idle: float | None = None, transcript: bool = False) -> AdapterOptions:
    """How adapters talk to `target`; with `transcript`, they keep a redacted Transcript of the conversation."""
    secret = target.api_key()
    connect = min(target.connect_timeout, target.timeout)
    timeouts = Timeouts(connect=connect, total=target.timeout, idle=idle or target.idle_timeout or target.timeout)
    redactor = Redactor([secret] if secret else [])
    return AdapterOptions(
        timeouts=timeouts,
        api_key=secret,
        verify=False if target.insecure else (target.ca_bundle or True),
        proxy=target.proxy,
        redactor=redactor,
        model=target.model,
        transcript=Transcript(redactor) if transcript else None,
        request_extra=target.request_extra,
        # An embedded stub answers at once and is never overloaded: what its scenarios check is that a status
        # is retried, not how long the backoff waits (the policy's timing is the adapters' tests' subject).
        retry=_STUB_RETRY if target.is_stub else RetryPolicy(),
    )


class ScenarioRuntime:
    def __init__(
        self,
        target: Target,
        profile: TargetProfile,
        *,
        default_script: Script | None = None,
        transcript: bool = False,
    ) -> None:
        self.target = target
        self.profile = profile
        self.script = default_script or Script()
        self.stub: StubServer | None = None
        self._adapter: HttpAdapter | None = None
        self._replicas: list[tuple[StubServer, HttpAdapter]] = []
        self.timings: list[StreamTiming] = []
        """Latency of every stream this scenario completed, for the report."""
        self._options = adapter_options(target, transcript=transcript)
        self.transcript: Transcript | None = self._options.transcript
        """Every request and frame of this scenario, redacted (when asked for: --transcripts, allure)."""
        self._runner = asyncio.Runner()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def stream(self, request: TaskRequest, *, cancel_after: int | None = None) -> StreamRecord:
        """Stream `request` to the target and keep what happened (and its latency, if it completed)."""
        record = self.run(collect(self.adapter, request, cancel_after=cancel_after))
        if record.error is None:
            timing = stream_timing(record.sent_at, [t.at for t in record.tokens])
            if timing is not None:
                self.timings.append(timing)
        return record

    def use_script(self, script: Script) -> None:
        """Choose what the stub plays; only before the first request of the scenario."""
        if self._adapter is not None:
            raise RuntimeError("the stub is already running: choose its script before the first request")
        self.script = script

    def set_idle_timeout(self, seconds: float) -> None:
        if self._adapter is not None:
            raise RuntimeError("set client timeouts before the first request")
        timeouts = dataclasses.replace(self._options.timeouts, idle=seconds)
        self._options = dataclasses.replace(self._options, timeouts=timeouts)

    @property
    def adapter(self) -> HttpAdapter:
        if self._adapter is None:
            url = self.target.url
            if url is None:
                self.stub = StubServer(self.target.engine, self.script)
                url = self.run(self.stub.start()).url
            self._adapter = create_adapter(self.target.engine, url, self._options)
        return self._adapter

    def add_stub_replica(self, script: Script) -> HttpAdapter:
        """Another stub of the same engine, playing `script`: a second replica for this scenario."""
        if not self.target.is_stub:
            raise RuntimeError("extra replicas are stubs: only a stub target can have them")
        stub = StubServer(self.target.engine, script)
        url = self.run(stub.start()).url
        adapter = create_adapter(self.target.engine, url, self._options)
        self._replicas.append((stub, adapter))
        return adapter

    def close(self) -> None:
        try:
            for stub, adapter in self._replicas:
                self.run(adapter.aclose())
                self.run(stub.close())
            if self._adapter is not None:
                self.run(self._adapter.aclose())
            if self.stub is not None:
                self.run(self.stub.close())
        finally:
            self._runner.close()
