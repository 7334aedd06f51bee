"""NVIDIA Triton's generate extension (docs/wires.md §5): ``/v2/models/{m}/generate_stream``.

Each response is one ``data: {"model_name", "model_version", "text_output", …}``
event; there is no terminator: the end of the body is the end of the stream,
so a stream cut short after a whole event cannot be told from a complete one
(no ``end_marker`` capability). Errors are ``{"error": "…"}``, before the
stream or as an event inside it. Sampling settings travel as request
``parameters`` (``max_tokens``, ``seed``, ``temperature``, ``top_p``), which is
what Python-backend and PyTriton models read; the model name is required.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from conform.stubs.triton import create_app as stub_app

from ._base import FrameFold, Generation, HttpAdapter
from ._engines import EngineDescriptor
from ._types import End, EngineVersion, Health, Props, TaskRequest, Token, TokenEvent, Usage
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = ["ENGINE", "TritonAdapter"]


class TritonAdapter(HttpAdapter):
    engine = "triton"
    capabilities = Capability.parse("streaming, seed, health, completions, engine_version, top_k, sampling")

    async def list_models(self) -> list[str]:
        """Ready models from the repository index (servers may restrict it: then --model is needed)."""
        try:
            body = (await self.http.request("POST", "/v2/repository/index", json_body={"ready": True})).json()
        except WorkerError as error:
            if error.kind is ErrorKind.AUTH:
                raise  # a key problem, not a server that keeps its models to itself
            raise WorkerError(
                ErrorKind.INVALID_REQUEST,
                f"{self.base_url} does not list its models ({error.message}); name the model (--model)",
                status=error.status,
            ) from None
        if not isinstance(body, list):
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/v2/repository/index is not a list")
        return [
            str(m["name"]) for m in body if isinstance(m, dict) and "name" in m and m.get("state", "READY") == "READY"
        ]

    def _model_path(self, model: str) -> str:
        return f"/v2/models/{quote(model, safe='')}"

    async def health(self) -> Health:
        return await self.probe_health("/v2/health/ready", lambda _body: True)

    async def props(self) -> Props:
        return Props(model=await self.default_model())

    async def engine_version(self) -> EngineVersion:
        server = (await self.http.request("GET", "/v2")).json()
        model = await self.default_model()
        metadata = (await self.http.request("GET", self._model_path(model))).json()
        versions = metadata.get("versions") if isinstance(metadata, dict) else None
        name = f"{model}@{versions[-1]}" if isinstance(versions, list) and versions else model
        version = server.get("version") if isinstance(server, dict) else None
        return EngineVersion(version=f"triton {version}" if version else None, model=name)

    def request_body(self, req: TaskRequest) -> dict[str, Any]:
        parameters: dict[str, Any] = {"max_tokens": req.max_tokens, "temperature": req.temperature, "top_p": req.top_p}
        if req.seed is not None:
            parameters["seed"] = req.seed
        if req.top_k is not None:
            parameters["top_k"] = req.top_k
        prompt = req.prompt if req.prompt is not None else "\n".join(m.content for m in req.messages or ())
        return {"id": req.task_id, "text_input": prompt, "parameters": parameters}

    async def generation(self, req: TaskRequest) -> Generation:
        path = self._model_path(await self.model_for(req)) + "/generate_stream"
        return Generation(path, self.request_body(req), _GenerateStreamFold(self, self.base_url + path))


class _GenerateStreamFold(FrameFold):
    """One event per token and no terminator: the end of the body is the end."""

    def __init__(self, adapter: HttpAdapter, url: str) -> None:
        super().__init__(adapter, url)
        self.last: dict[str, Any] = {}

    def fold(self, data: str, at: float) -> list[TokenEvent]:
        frame = self.object(data)
        if "error" in frame:
            raise self.adapter.stream_error(str(frame["error"]))
        text = frame.get("text_output")
        if not isinstance(text, str):
            raise WorkerError(
                ErrorKind.PROTOCOL_VIOLATION,
                f"{self.url}: event {self.frames} has no text_output: {str(frame)[:120]}",
                in_stream=True,
            )
        self.last = frame
        return [Token(self.frames - 1, text, None, at)]

    def end(self) -> list[TokenEvent]:
        # A backend may name why it stopped.
        reason = str(self.last.get("finish_reason") or "stop")
        count = self.last.get("num_output_tokens")
        return [End(reason, Usage(None, count) if isinstance(count, int) else None, time.monotonic(), raw=self.last)]


ENGINE = EngineDescriptor(
    name="triton",
    adapter=TritonAdapter,
    speaks="`/v2/models/{m}/generate_stream`, `/v2/health/ready`, `/v2`",
    notes="needs `--model`; no end marker, so truncation after a whole event cannot be seen",
    stub=stub_app,
    default_port=8000,
    rank=3,
)
"""The ``conform.engines`` entry point of this engine."""
