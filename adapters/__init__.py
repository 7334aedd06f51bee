"""Adapters: one interface over every inference engine's wire protocol.

The public API is what this module exports; ``_http``, ``_sse`` and the engine
modules are private.
"""

from ._base import AdapterOptions, HttpAdapter
from ._http import RetryPolicy, Timeouts, classify_status
from ._openai import OpenAIAdapter
from ._redact import Redactor, fingerprint
from ._registry import ADAPTERS, ENGINE_NAMES, UnknownEngineError, create_adapter
from ._sse import SSEDecoder, SSEError, SSEEvent
from ._transcript import Transcript
from ._types import (
    ChatMessage,
    End,
    EngineVersion,
    Health,
    Metrics,
    Props,
    Started,
    TaskRequest,
    Token,
    TokenEvent,
    Usage,
    WorkerAdapter,
)
from .anthropic import AnthropicAdapter
from .capabilities import Capability
from .echo import EchoAdapter
from .errors import ErrorKind, WorkerError
from .llamacpp import LlamaCppAdapter
from .llamaswap import LlamaSwapAdapter, split_llamaswap_url
from .ollama import OllamaAdapter
from .tgi import TgiAdapter
from .triton import TritonAdapter
from .vllm import VllmAdapter

__all__ = [
    "ADAPTERS",
    "ENGINE_NAMES",
    "AdapterOptions",
    "AnthropicAdapter",
    "Capability",
    "ChatMessage",
    "EchoAdapter",
    "End",
    "EngineVersion",
    "ErrorKind",
    "Health",
    "HttpAdapter",
    "LlamaCppAdapter",
    "LlamaSwapAdapter",
    "Metrics",
    "OllamaAdapter",
    "OpenAIAdapter",
    "Props",
    "Redactor",
    "RetryPolicy",
    "SSEDecoder",
    "SSEError",
    "SSEEvent",
    "Started",
    "TaskRequest",
    "TgiAdapter",
    "Timeouts",
    "Token",
    "TokenEvent",
    "Transcript",
    "TritonAdapter",
    "UnknownEngineError",
    "Usage",
    "VllmAdapter",
    "WorkerAdapter",
    "WorkerError",
    "classify_status",
    "create_adapter",
    "fingerprint",
    "split_llamaswap_url",
]
