"""Run a stub engine on a real socket: in process (tests, `conform run`) or standalone (`conform stub`)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from ._arrival import ArrivalStamps, StampedListener, stamp_arrival
from ._engine import StubContext, StubState
from .script import Script
from .timeline import Timeline, timeline_of

__all__ = ["StubServer", "UnknownEngineError", "start_stub", "stub_engines"]


def stub_engines() -> dict[str, Callable[[StubContext], web.Application]]:
    """Engine name -> stub application factory, for every installed engine that has a stub."""
    from conform.adapters import engines  # the descriptors name their stubs: imported when first needed

    return {name: d.stub for name, d in engines().items() if d.stub is not None}


class UnknownEngineError(ValueError):
    pass


class StubServer:
    """A stub engine bound to host:port (port 0 = a free one). Start with `async with` or start()."""

    def __init__(
        self,
        engine: str,
        script: Script | None = None,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "stub-model",
        salt: str = "",
        ssl_context: ssl.SSLContext | None = None,
        keep_timeline: bool = False,
    ) -> None:
        factories = stub_engines()
        if engine not in factories:
            raise UnknownEngineError(f"no stub for engine {engine!r} (stubs exist for: {', '.join(factories)})")
        self._factory = factories[engine]
        self.engine = engine
        self.context = StubContext(
            engine=engine, script=script or Script(), seed=seed, model=model, salt=salt, keep_timeline=keep_timeline
        )
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._ssl = ssl_context
        self.url = ""

    @property
    def state(self) -> StubState:
        return self.context.state

    def timeline(self) -> Timeline:
        """When each token of each generation so far was written (empty lists unless `keep_timeline`)."""
        return timeline_of(self.engine, self.state)

    async def start(self) -> StubServer:
        app = self._factory(self.context)
        # Bind first, then read the real port back: never "find a free port, bind it later".
        sock = StampedListener()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        port = sock.getsockname()[1]
        app.middlewares.insert(0, stamp_arrival)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        protocols = runner.server
        assert protocols is not None, "set up just above"
        # Not a SockSite: each connection's protocol is wrapped, so that requests carry their bytes' arrival.
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: ArrivalStamps(protocols(), sock), sock=sock, ssl=self._ssl
            )
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self.url = f"{'https' if self._ssl else 'http'}://{self._host}:{port}"
        return self

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self.state.background):
            task.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.close()  # no new connections; the runner closes the open ones
        await runner.cleanup()

    async def __aenter__(self) -> StubServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def start_stub(
    engine: str, script: Script | None = None, *, seed: int = 0, model: str = "stub-model", salt: str = ""
) -> StubServer:
    """`async with start_stub("llamacpp", script) as stub:` gives `stub.url` (a free loopback port)."""
    return StubServer(engine, script, seed=seed, model=model, salt=salt)
