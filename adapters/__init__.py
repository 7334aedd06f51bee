"""Adapters: one interface over every inference engine's wire protocol.

The public API is what this module exports; ``_http``, ``_sse`` and the engine
modules are private.
"""

from ._base import AdapterOptions, FrameFold, Generation, HttpAdapter, StreamFold, Whole, field_text, text_answer
from ._engines import (
    ENTRY_POINT_GROUP,
    EngineDescriptor,
    UnknownEngineError,
    create_adapter,
    engine_name,
    engine_names,
    engines,
)
from ._http import RetryPolicy, Timeouts, classify_status
from ._openai import OpenAIAdapter
from ._proxy import ProxyConfig
from ._redact import Redactor, fingerprint
from ._sse import SSEDecoder, SSEError, SSEEvent
from ._transcript import Transcript
from ._types import (
    Answer,
    ChatMessage,
    End,
    EngineVersion,
    Health,
    Metrics,
    Props,
    ResponseFormat,
    Started,
    TaskRequest,
    Token,
    TokenEvent,
    ToolCall,
    ToolSpec,
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
from .responses import ResponsesAdapter
from .tgi import TgiAdapter
from .triton import TritonAdapter
from .vllm import VllmAdapter

__all__ = [
    "ENTRY_POINT_GROUP",
    "AdapterOptions",
    "Answer",
    "AnthropicAdapter",
    "Capability",
    "ChatMessage",
    "EchoAdapter",
    "End",
    "EngineDescriptor",
    "EngineVersion",
    "ErrorKind",
    "FrameFold",
    "Generation",
    "Health",
    "HttpAdapter",
    "LlamaCppAdapter",
    "LlamaSwapAdapter",
    "Metrics",
    "OllamaAdapter",
    "OpenAIAdapter",
    "Props",
    "ProxyConfig",
    "Redactor",
    "ResponseFormat",
    "ResponsesAdapter",
    "RetryPolicy",
    "SSEDecoder",
    "SSEError",
    "SSEEvent",
    "Started",
    "StreamFold",
    "TaskRequest",
    "TgiAdapter",
    "Timeouts",
    "Token",
    "TokenEvent",
    "ToolCall",
    "ToolSpec",
    "Transcript",
    "TritonAdapter",
    "UnknownEngineError",
    "Usage",
    "VllmAdapter",
    "Whole",
    "WorkerAdapter",
    "WorkerError",
    "classify_status",
    "create_adapter",
    "engine_name",
    "engine_names",
    "engines",
    "field_text",
    "fingerprint",
    "split_llamaswap_url",
    "text_answer",
]
