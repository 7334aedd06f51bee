"""Engine names (the public contract) and the adapter for each."""

from __future__ import annotations

from ._base import AdapterOptions, HttpAdapter
from ._openai import OpenAIAdapter
from .anthropic import AnthropicAdapter
from .echo import EchoAdapter
from .llamacpp import LlamaCppAdapter
from .llamaswap import LlamaSwapAdapter
from .ollama import OllamaAdapter
from .tgi import TgiAdapter
from .triton import TritonAdapter
from .vllm import VllmAdapter

__all__ = ["ADAPTERS", "ENGINE_NAMES", "UnknownEngineError", "create_adapter"]

ENGINE_NAMES: tuple[str, ...] = (
    "llamacpp",
    "vllm",
    "tgi",
    "triton",
    "openai",
    "anthropic",
    "llamaswap",
    "ollama",
    "echo",
)
"""Every engine name in cli-and-report.md, implemented or not yet."""

ADAPTERS: dict[str, type[HttpAdapter]] = {
    "llamacpp": LlamaCppAdapter,
    "vllm": VllmAdapter,
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "llamaswap": LlamaSwapAdapter,
    "ollama": OllamaAdapter,
    "tgi": TgiAdapter,
    "triton": TritonAdapter,
    "echo": EchoAdapter,
}


class UnknownEngineError(ValueError):
    pass


def create_adapter(engine: str, base_url: str, options: AdapterOptions | None = None) -> HttpAdapter:
    if engine not in ENGINE_NAMES:
        raise UnknownEngineError(f"unknown engine {engine!r} (known: {', '.join(ENGINE_NAMES)})")
    if engine not in ADAPTERS:
        raise UnknownEngineError(
            f"engine {engine!r} has no adapter in this version (available: {', '.join(sorted(ADAPTERS))})"
        )
    return ADAPTERS[engine](base_url, options)
