"""The built-in echo engine (stubs/echo.py has the wire format): the prompt streamed back, word by word.

No seed matters and no model runs, so every check's outcome is exact: a
pipeline smoke test that fails here failed in the pipeline, not the engine.
"""

from __future__ import annotations

import time
from typing import Any

from conform.stubs.echo import create_app as stub_app

from ._base import FrameFold, Generation, HttpAdapter, Whole, field_text, text_answer
from ._engines import EngineDescriptor
from ._types import End, EngineVersion, Health, Props, TaskRequest, Token, TokenEvent, Usage
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = ["ENGINE", "EchoAdapter"]


class EchoAdapter(HttpAdapter):
    engine = "echo"
    capabilities = Capability.parse(
        "streaming, end_marker, token_ids, seed, usage, health, completions, non_streaming, engine_version"
    )

    async def health(self) -> Health:
        return await self.probe_health("/health", lambda body: isinstance(body, dict) and body.get("status") == "ok")

    async def props(self) -> Props:
        return Props(model=(await self.engine_version()).model)

    async def engine_version(self) -> EngineVersion:
        body = (await self.http.request("GET", "/version")).json()
        if not isinstance(body, dict):
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/version did not answer a JSON object")
        return EngineVersion(version=body.get("version"), model=body.get("model"))

    def request_body(self, req: TaskRequest, *, stream: bool) -> dict[str, Any]:
        prompt = req.prompt if req.prompt is not None else "\n".join(m.content for m in req.messages or ())
        body: dict[str, Any] = {"prompt": prompt, "max_tokens": req.max_tokens, "stream": stream}
        if req.seed is not None:
            body["seed"] = req.seed
        return body

    async def whole(self, req: TaskRequest) -> Whole:
        return Whole(
            "/generate", self.request_body(req, stream=False), text_answer(lambda reply: field_text(reply, "text"))
        )

    async def generation(self, req: TaskRequest) -> Generation:
        body = self.request_body(req, stream=True)
        return Generation("/generate", body, _EchoFold(self, self.base_url + "/generate"))


class _EchoFold(FrameFold):
    """One event per word, then ``{"done": true}`` with the usage."""

    terminator = "the done event"

    def fold(self, data: str, at: float) -> list[TokenEvent]:
        frame = self.object(data)
        if "error" in frame:
            raise self.adapter.stream_error(self.adapter.describe_error(200, frame))
        if frame.get("done") is True:
            self.finished = True
            return [_end(frame)]
        index, token_id = frame.get("index"), frame.get("id")
        return [
            Token(
                index if type(index) is int else self.frames - 1,
                str(frame.get("text", "")),
                token_id if type(token_id) is int else None,
                at,
            )
        ]


def _end(frame: dict[str, Any]) -> End:
    usage = frame.get("usage") if isinstance(frame.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return End(
        str(frame.get("finish_reason") or "stop"),
        Usage.read(prompt, completion),
        time.monotonic(),
        raw=frame,
    )


ENGINE = EngineDescriptor(
    name="echo",
    adapter=EchoAdapter,
    speaks="conform's own: the prompt streamed back word by word",
    notes="`conform stub echo --token-delay-ms 20` is a zero-dependency target",
    stub=stub_app,
    rank=8,
)
"""The ``conform.engines`` entry point of this engine."""
