"""llama.cpp server, native API: POST /completion (SSE), /health, /props, /slots, /v1/models.

Wire details: docs/wires.md §2. The native stream has no ``[DONE]``; success is
the final event with ``stop: true``. A stream that ends without it, an
``{"error": ...}`` event, or a legacy ``error:`` line (dropped by SSE rules)
never counts as a completed generation.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from conform.stubs.llamacpp import create_app as stub_app

from ._base import FrameFold, Generation, HttpAdapter, Whole, field_text
from ._engines import EngineDescriptor
from ._openai import chat_message
from ._types import (
    Answer,
    End,
    EngineVersion,
    Health,
    Metrics,
    Props,
    TaskRequest,
    Token,
    TokenEvent,
    Usage,
    frame_tokens,
)
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = ["ENGINE", "LlamaCppAdapter"]

_FINISH_REASONS = {"eos": "stop", "word": "stop", "limit": "length", "none": "stop"}


class LlamaCppAdapter(HttpAdapter):
    engine = "llamacpp"
    capabilities = Capability.parse(
        "streaming, end_marker, token_ids, seed, usage, health, props, engine_side_cancel, completions, "
        "non_streaming, model_digest, engine_version, logprobs, prompt_cache_control, tokenize, detokenize, "
        "top_k, sampling, named_models, stop, metrics, other_wires, top_logprobs, json_schema, json_object"
    )
    """What the protocol offers; probing a target removes what that server turns off."""
    budget_key = ("n_predict",)
    public_health = True
    also_speaks = ("openai", "anthropic", "responses")
    metrics_counters = {
        "prompt_tokens": "llamacpp:prompt_tokens_total",
        "generated_tokens": "llamacpp:tokens_predicted_total",
        "queued_requests": "llamacpp:requests_deferred",
    }

    async def health(self) -> Health:
        return await self.probe_health("/health", lambda body: isinstance(body, dict) and body.get("status") == "ok")

    async def props(self) -> Props:
        props = (await self.http.request("GET", "/props")).json()
        if not isinstance(props, dict):
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/props did not answer a JSON object")
        settings = props.get("default_generation_settings") or {}
        slots = await self._slots()
        return Props(
            model=_model_name(props),
            ctx_max=settings.get("n_ctx"),
            total_slots=props.get("total_slots"),
            busy_slots=None if slots is None else sum(1 for slot in slots if slot.get("is_processing")),
            slot_tasks=None if slots is None else tuple(_task_ids(slots)),
        )

    async def _slots(self) -> list[dict[str, Any]] | None:
        """The slots /slots describes; None where the server disabled it (--no-slots)."""
        reply = await self.http.request("GET", "/slots", ok_statuses=frozenset({404, 501}), retry=False)
        slots = reply.json() if reply.status == 200 else None
        return [slot for slot in slots if isinstance(slot, dict)] if isinstance(slots, list) else None

    async def engine_version(self) -> EngineVersion:
        props = (await self.http.request("GET", "/props")).json()
        models = (await self.http.request("GET", "/v1/models")).json()
        meta = None
        if isinstance(models, dict) and models.get("data"):
            meta = models["data"][0].get("meta")
        return EngineVersion(
            version=props.get("build_info") if isinstance(props, dict) else None,
            model=_model_name(props) if isinstance(props, dict) else None,
            model_digest=_meta_digest(meta),
        )

    def request_body(self, req: TaskRequest, prompt: str, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": prompt,
            "stream": stream,
            "n_predict": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "top_k": req.top_k if req.top_k is not None else 0,
            "min_p": 0.0,
            "stop": list(req.stop),
        }
        if req.seed is not None:
            body["seed"] = req.seed
        if req.cache_prompt is not None:
            body["cache_prompt"] = req.cache_prompt
        if req.model is not None:
            body["model"] = req.model
        if req.logprobs:
            body["n_probs"] = max(1, req.top_logprobs)
        if req.response_format is not None:
            # The native API takes a schema (its grammar); "any JSON object" is the schema of an object.
            body["json_schema"] = req.response_format.json_schema or {"type": "object"}
        return body

    async def _prompt(self, req: TaskRequest) -> str:
        if req.prompt is not None:
            return req.prompt
        messages = [chat_message(m) for m in req.messages or ()]
        reply = await self.http.request("POST", "/apply-template", json_body={"messages": messages})
        prompt = reply.json().get("prompt") if isinstance(reply.json(), dict) else None
        if not isinstance(prompt, str):
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/apply-template returned no prompt")
        return prompt

    async def whole_logprobs(self, req: TaskRequest) -> list[float]:
        """The log-probability of each token of the same request answered whole (completion_probabilities)."""
        body = self.request_body(req, await self._prompt(req), stream=False)
        reply = (await self.http.request("POST", "/completion", json_body=self._with_extra(body))).json()
        found = _logprobs(reply) if isinstance(reply, dict) else {}
        return [found[n] for n in sorted(found)]

    async def count_prompt_tokens(self, req: TaskRequest) -> int:
        """/tokenize with the special tokens /completion adds (the BOS), so that it counts what is evaluated."""
        body = {"content": await self._prompt(req), "add_special": True}
        tokens = (await self.http.request("POST", "/tokenize", json_body=body)).json()
        ids = tokens.get("tokens") if isinstance(tokens, dict) else None
        if not isinstance(ids, list):
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/tokenize answered without tokens")
        return len(ids)

    async def detokenize(self, ids: list[int]) -> str:
        text = field_text((await self.http.request("POST", "/detokenize", json_body={"tokens": ids})).json(), "content")
        if text is None:
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/detokenize answered without content")
        return text

    async def whole(self, req: TaskRequest) -> Whole:
        body = self.request_body(req, await self._prompt(req), stream=False)
        return Whole("/completion", body, _whole_answer)

    async def generation(self, req: TaskRequest) -> Generation:
        body = self.request_body(req, await self._prompt(req), stream=True)
        return Generation("/completion", body, _CompletionFold(self, self.base_url + "/completion"))


def _finish_reason(frame: dict[str, Any]) -> str:
    """Why generation stopped, from the final frame's ``stop_type``."""
    return _FINISH_REASONS.get(str(frame.get("stop_type", "")), str(frame.get("stop_type") or "stop"))


def _whole_answer(reply: Any) -> Answer | None:
    text = field_text(reply, "content")
    return None if text is None else Answer(text, finish_reason=_finish_reason(reply))


class _CompletionFold(FrameFold):
    """A /completion stream: a frame per token (rarely several), then the final frame with ``stop: true``."""

    terminator = "the final stop:true frame"

    def __init__(self, adapter: HttpAdapter, url: str) -> None:
        super().__init__(adapter, url)
        self.position = 0

    def fold(self, data: str, at: float) -> Iterable[TokenEvent]:
        try:
            plain = _decode_token_frame(data)
        except (msgspec.DecodeError, UnicodeEncodeError):
            pass
        else:
            if (
                len(plain.tokens) == 1
                and not plain.stop
                and plain.error is msgspec.UNSET
                and plain.completion_probabilities is msgspec.UNSET
            ):
                self.frames += 1
                self.position = plain.tokens_predicted
                return (Token(self.position - 1, plain.content, plain.tokens[0], at),)
        frame = self.object(data)
        if "error" in frame:
            raise self.adapter.stream_error(self.adapter.describe_error(200, frame))
        if frame.get("stop") is True:
            self.finished = True
            return _final_events(frame)
        tokens = _tokens(frame, self.position, at)
        if tokens:
            self.position = tokens[-1].index + 1
        return tokens


class _TokenFrame(msgspec.Struct, gc=False):
    """What the frame of nearly every token holds: one id, the running count, no probabilities, no error.

    Decoded straight from the frame's JSON, several times faster than a dict; the
    decoder still reads every other field (a frame that is not JSON fails here
    too). A frame that does not fit this shape, or that holds more than it, takes
    the general path, which reads it as a dict: the two must always agree
    (tests/adapters/test_llamacpp.py proves it on generated frames).
    """

    tokens: list[int]
    tokens_predicted: int
    content: str = ""
    stop: bool = False
    error: Any = msgspec.UNSET
    """Present at all (even null): an error frame, for the general path."""
    completion_probabilities: Any = msgspec.UNSET


_decode_token_frame = msgspec.json.Decoder(_TokenFrame).decode


def _tokens(frame: dict[str, Any], position: int, now: float) -> list[Token]:
    """One Token per generated token id; the frame's text rides on the last one (the general path).

    Recent builds state the running count (``tokens_predicted``), which fixes
    the index; without it tokens are numbered in arrival order.
    """
    text = frame.get("content", "")
    tokens = frame.get("tokens")
    predicted = frame.get("tokens_predicted")
    ids = [i for i in tokens or [] if isinstance(i, int)]
    first = predicted - max(1, len(ids)) if isinstance(predicted, int) else position
    return frame_tokens(first, text, ids, now, _logprobs(frame), _tops(frame))


def _logprobs(frame: dict[str, Any]) -> dict[int, float]:
    """Per-token log-probabilities of a frame (``completion_probabilities`` with ``n_probs``), by position."""
    entries = frame.get("completion_probabilities")
    if not isinstance(entries, list):
        return {}
    found: dict[int, float] = {}
    for n, entry in enumerate(entries):
        value = entry.get("logprob") if isinstance(entry, dict) else None
        if isinstance(value, int | float):
            found[n] = float(value)
    return found


def _tops(frame: dict[str, Any]) -> dict[int, tuple[tuple[int | None, str, float], ...]]:
    """The most likely tokens listed at each position of a frame (``top_logprobs`` of each entry)."""
    entries = frame.get("completion_probabilities")
    found: dict[int, tuple[tuple[int | None, str, float], ...]] = {}
    for n, entry in enumerate(entries if isinstance(entries, list) else []):
        listed = entry.get("top_logprobs") if isinstance(entry, dict) else None
        if isinstance(listed, list):
            found[n] = tuple(
                _listed(item)
                for item in listed
                if isinstance(item, dict) and isinstance(item.get("logprob"), int | float)
            )
    return found


def _listed(item: dict[str, Any]) -> tuple[int | None, str, float]:
    """One of the most likely tokens: its id (where the entry names one), text and log-probability."""
    token_id = item.get("id")
    return (token_id if type(token_id) is int else None, str(item.get("token", "")), float(item["logprob"]))


def _final_events(frame: dict[str, Any]) -> list[TokenEvent]:
    now = time.monotonic()
    events: list[TokenEvent] = []
    timings = frame.get("timings")
    if isinstance(timings, dict):
        events.append(Metrics({k: float(v) for k, v in timings.items() if isinstance(v, int | float)}, now))
    predicted = frame.get("tokens_predicted")
    evaluated = frame.get("tokens_evaluated")
    usage = Usage.read(evaluated, predicted)
    reason = _finish_reason(frame)
    events.append(End(reason, usage, now, raw=frame))
    return events


def _model_name(props: dict[str, Any]) -> str | None:
    """The alias, or the model file's name; llama.cpp's default alias is the -m path itself."""
    for key in ("model_alias", "model_path"):
        value = props.get(key)
        if isinstance(value, str) and value:
            return value.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".gguf")
    return None


_DIGEST_FIELDS = ("vocab_type", "n_vocab", "n_ctx_train", "n_embd", "n_params", "size", "ftype")


def _meta_digest(meta: Any) -> str | None:
    """llama.cpp exposes no file hash; a digest of the model's own metadata tells models apart.

    Only fields of the model file count: ``n_ctx`` follows the server's flags, not the model.
    """
    if not isinstance(meta, dict):
        return None
    fields = {k: meta[k] for k in _DIGEST_FIELDS if k in meta}
    if not fields:
        return None
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return "meta-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


ENGINE = EngineDescriptor(
    name="llamacpp",
    adapter=LlamaCppAdapter,
    speaks="native `/completion` SSE, `/health`, `/props`, `/slots`",
    notes="token ids, logprobs, `cache_prompt`, engine-side cancel",
    stub=stub_app,
    default_port=8080,
    rank=0,
)
"""The ``conform.engines`` entry point of this engine."""


def _task_ids(slots: list[dict[str, Any]]) -> list[int]:
    """The task id each slot names (a running task's, or an idle slot's last); -1 and absent name none."""
    return [slot["id_task"] for slot in slots if type(slot.get("id_task")) is int and slot["id_task"] >= 0]
