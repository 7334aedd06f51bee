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

ADAPTERS: dict[str, type[HttpAdapter]] = {
    "llamacpp": LlamaCppAdapter,
    "vllm": VllmAdapter,
    "tgi": TgiAdapter,
    "triton": TritonAdapter,
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "llamaswap": LlamaSwapAdapter,
    "ollama": OllamaAdapter,
    "echo": EchoAdapter,
}
"""Engine name -> adapter, for every engine of cli-and-report.md, in the contract's order."""

ENGINE_NAMES: tuple[str, ...] = tuple(ADAPTERS)
"""Every engine name of the contract (each has an adapter)."""


class UnknownEngineError(ValueError):
    pass


def create_adapter(engine: str, base_url: str, options: AdapterOptions | None = None) -> HttpAdapter:
    if engine not in ADAPTERS:
        raise UnknownEngineError(f"unknown engine {engine!r} (known: {', '.join(ENGINE_NAMES)})")
    return ADAPTERS[engine](base_url, options)
