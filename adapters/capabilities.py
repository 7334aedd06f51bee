"""Capability names: what a check may need from a target. One closed list; every Gherkin tag uses it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Capability"]


class Capability(StrEnum):
    STREAMING = "streaming"
    """Streams token events (every engine here)."""
    TOKEN_IDS = "token_ids"
    """Each streamed token carries its vocabulary id."""
    SEED = "seed"
    """A request seed is honoured."""
    USAGE = "usage"
    """The end of a stream reports prompt and completion token counts."""
    STOP = "stop"
    """A request's stop strings end the generation before them."""
    AUTH = "auth"
    """The target was given an API key (--api-key-env): requests without it, or with another, are refused."""
    OTHER_WIRES = "other_wires"
    """The server also speaks other engines' wires (llama.cpp: OpenAI's and Anthropic's), which must answer the
    same request alike."""
    METRICS = "metrics"
    """The engine exposes Prometheus counters of what it served (llama.cpp started with --metrics)."""
    SAMPLING = "sampling"
    """The engine samples at a temperature above 0 (conform's echo engine only repeats its prompt)."""
    TOP_K = "top_k"
    """A request's top_k is honoured (top_k 1 leaves one candidate: sampling is then greedy)."""
    LOGPROBS = "logprobs"
    """Each sampled token can come with its log-probability."""
    TOP_LOGPROBS = "top_logprobs"
    """Each token can come with a list of the most likely tokens at its position, streamed and whole."""
    JSON_SCHEMA = "json_schema"
    """A request can constrain the output to a JSON schema (OpenAI response_format, llama.cpp json_schema,
    Ollama format)."""
    JSON_OBJECT = "json_object"
    """A request can ask for any one JSON object as the output (JSON mode)."""
    TOOLS = "tools"
    """A request can declare tools, which the answer may call; a tool's result can be sent back."""
    TOOL_CHOICE = "tool_choice"
    """A request can require a tool call, or forbid one (OpenAI and Anthropic tool_choice)."""
    PARALLEL_TOOLS = "parallel_tools"
    """Declared, never inferred: the target makes several tool calls in one answer when allowed to."""
    TOKENIZE = "tokenize"
    """The engine counts a request's prompt tokens with its own tokenizer (llama.cpp /tokenize, Anthropic
    /v1/messages/count_tokens)."""
    DETOKENIZE = "detokenize"
    """The engine turns token ids back into text (llama.cpp /detokenize)."""
    PROMPT_CACHE_CONTROL = "prompt_cache_control"
    """A request can turn the engine's prompt (prefix) cache on or off (llama.cpp cache_prompt)."""
    BATCH_INVARIANCE = "batch_invariance"
    """Declared, never inferred: the engine promises identical tokens whatever else shares the batch."""
    ENGINE_SIDE_CANCEL = "engine_side_cancel"
    """The engine exposes whether it is still generating (llama.cpp /slots), so a stop can be proven."""
    END_MARKER = "end_marker"
    """The last frame says it is the last, so a stream cut short after a whole frame is detectable."""
    MODEL_DIGEST = "model_digest"
    ENGINE_VERSION = "engine_version"
    """The engine names its version: a build, a release, or a backend fingerprint."""
    OPENAI_COMPAT = "openai_compat"
    """Speaks the OpenAI chat/completions wire format, so the OpenAI-compatibility checks apply."""
    RESPONSES_API = "responses_api"
    """Speaks OpenAI's Responses API (``/v1/responses``), so the checks of its event stream apply."""
    HEALTH = "health"
    PROPS = "props"
    CHAT = "chat"
    COMPLETIONS = "completions"
    NON_STREAMING = "non_streaming"
    """The same request can be answered whole, without streaming."""
    MODEL_SELECTION = "model_selection"
    """The request's model field chooses among models (an unknown one is rejected)."""
    NAMED_MODELS = "named_models"
    """A request names its model, and the answer names the model that answered (so an unknown model can be
    refused, or served by another model that says so)."""
    MODEL_MANAGEMENT = "model_management"
    IMAGE_GENERATION = "image_generation"
    SCRIPTED_FAULTS = "scripted_faults"
    """The target is a stub that can play scripted faults."""

    @classmethod
    def parse(cls, names: str) -> frozenset[Capability]:
        """Capabilities from a comma-separated list of their names (as ``--capabilities`` takes them); an
        unknown name is a ValueError that lists the known ones."""
        listed = [name.strip() for name in names.split(",") if name.strip()]
        known = {c.value for c in cls}
        unknown = [name for name in listed if name not in known]
        if unknown:
            raise ValueError(f"unknown capability {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return frozenset(cls(name) for name in listed)
