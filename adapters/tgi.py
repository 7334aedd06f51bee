"""Hugging Face Text Generation Inference (docs/wires.md §4): ``/generate_stream``, ``/generate``, ``/info``.

Each event is one token (``index`` from 1, ``token{id,text,logprob,special}``);
the last also has ``generated_text`` and ``details``, and there is no
terminator. The stream starts before validation runs, so errors (even a
zero temperature) usually arrive inside a 200 stream as ``{"error",
"error_type"}``; ``error_type`` names the class, before and inside a stream.
Greedy decoding is ``do_sample: false`` with no temperature: TGI refuses a
temperature that is not strictly positive.
"""

from __future__ import annotations

import time
from typing import Any

from conform.stubs.tgi import create_app as stub_app

from ._base import FrameFold, Generation, HttpAdapter, Whole, field_text, text_answer
from ._engines import EngineDescriptor
from ._types import End, EngineVersion, Health, Props, TaskRequest, Token, TokenEvent, Usage
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = ["ENGINE", "TgiAdapter"]

ERROR_TYPES = {
    "validation": ErrorKind.INVALID_REQUEST,
    "template_error": ErrorKind.INVALID_REQUEST,
    "missing_template_variable": ErrorKind.INVALID_REQUEST,
    "tool_error": ErrorKind.INVALID_REQUEST,
    "overloaded": ErrorKind.OVERLOADED,
    "generation": ErrorKind.ENGINE_ERROR,
    "incomplete_generation": ErrorKind.ENGINE_ERROR,
    "incomplete_generation_stream": ErrorKind.ENGINE_ERROR,
    "stream_serialization_error": ErrorKind.ENGINE_ERROR,
    "healthcheck": ErrorKind.UPSTREAM_UNAVAILABLE,
}

_FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


class TgiAdapter(HttpAdapter):
    engine = "tgi"
    capabilities = Capability.parse(
        "streaming, end_marker, token_ids, seed, usage, health, completions, non_streaming, model_digest, "
        "engine_version, logprobs, top_k, sampling, stop"
    )
    budget_key = ("parameters", "max_new_tokens")

    def classify_error(self, status: int, body: Any, message: str) -> ErrorKind:
        error_type = body.get("error_type") if isinstance(body, dict) else None
        return ERROR_TYPES.get(str(error_type)) or super().classify_error(status, body, message)

    async def health(self) -> Health:
        return await self.probe_health("/health", lambda _body: True)

    async def _info(self) -> dict[str, Any]:
        info = (await self.http.request("GET", "/info")).json()
        if not isinstance(info, dict):
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/info did not answer a JSON object")
        return info

    async def props(self) -> Props:
        info = await self._info()
        total = info.get("max_total_tokens")
        return Props(model=info.get("model_id"), ctx_max=total if isinstance(total, int) else None)

    async def engine_version(self) -> EngineVersion:
        info = await self._info()
        sha = info.get("model_sha")
        return EngineVersion(
            version=info.get("version"),
            model=info.get("model_id"),
            model_digest=f"sha:{sha}" if isinstance(sha, str) and sha else None,
        )

    def request_body(self, req: TaskRequest) -> dict[str, Any]:
        parameters: dict[str, Any] = {"max_new_tokens": req.max_tokens, "details": True, "decoder_input_details": False}
        if req.temperature > 0:
            parameters.update(do_sample=True, temperature=req.temperature)
        else:
            parameters["do_sample"] = False
        if req.top_p < 1.0:
            parameters["top_p"] = req.top_p
        if req.top_k:
            parameters["top_k"] = req.top_k
        if req.seed is not None:
            parameters["seed"] = req.seed
        if req.stop:
            parameters["stop"] = list(req.stop)
        prompt = req.prompt if req.prompt is not None else "\n".join(m.content for m in req.messages or ())
        return {"inputs": prompt, "parameters": parameters}

    async def whole(self, req: TaskRequest) -> Whole:
        return Whole(
            "/generate", self.request_body(req), text_answer(lambda reply: field_text(reply, "generated_text"))
        )

    async def generation(self, req: TaskRequest) -> Generation:
        return Generation(
            "/generate_stream", self.request_body(req), _GenerateFold(self, self.base_url + "/generate_stream")
        )


class _GenerateFold(FrameFold):
    """One event per token; the last also carries ``generated_text`` and ``details``."""

    terminator = "the final event (the one with generated_text)"

    def fold(self, data: str, at: float) -> list[TokenEvent]:
        frame = self.object(data)
        if "error" in frame:
            kind = ERROR_TYPES.get(str(frame.get("error_type")), ErrorKind.ENGINE_ERROR)
            error = self.adapter.stream_error(f"{frame.get('error_type')}: {frame.get('error')}")
            raise WorkerError(kind, error.message, status=200, in_stream=True)
        token = _token(frame, self.frames, self.url, at)
        if frame.get("generated_text") is None:
            return [token]
        self.finished = True
        return [token, _end(frame)]


def _token(frame: dict[str, Any], number: int, url: str, at: float) -> Token:
    token = frame.get("token")
    if not isinstance(token, dict) or type(token.get("id")) is not int:
        raise WorkerError(
            ErrorKind.PROTOCOL_VIOLATION, f"{url}: event {number} has no token with an id", in_stream=True
        )
    index = frame.get("index")
    position = index - 1 if type(index) is int else number - 1
    text = "" if token.get("special") else str(token.get("text", ""))
    logprob = token.get("logprob")
    return Token(position, text, token["id"], at, float(logprob) if isinstance(logprob, int | float) else None)


def _end(frame: dict[str, Any]) -> End:
    details = frame.get("details") if isinstance(frame.get("details"), dict) else {}
    assert isinstance(details, dict)
    generated = details.get("generated_tokens")
    prompt = details.get("input_length")
    usage = Usage.read(prompt, generated)
    reason = str(details.get("finish_reason") or "length")
    return End(_FINISH_REASONS.get(reason, reason), usage, time.monotonic(), raw=frame)


ENGINE = EngineDescriptor(
    name="tgi",
    adapter=TgiAdapter,
    speaks="`/generate_stream`, `/generate`, `/info`",
    notes="greedy is `do_sample: false`; `error_type` classifies errors, in a 200 stream too",
    stub=stub_app,
    default_port=3000,
    rank=2,
)
"""The ``conform.engines`` entry point of this engine."""
