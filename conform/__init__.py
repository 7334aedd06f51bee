"""conform: determinism and conformance test harness for LLM inference engines.

The public API, importable from here::

    from conform import TaskRequest, create_adapter, start_stub, collect

Names load on first use (PEP 562), so that importing a submodule, as pytest does
with the ``conform.harness.pytest_plugin`` entry point in every session of every
repository, costs nothing until a conform option is given.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conform.adapters import (
        AdapterOptions,
        Answer,
        Capability,
        ChatMessage,
        End,
        EngineDescriptor,
        EngineVersion,
        ErrorKind,
        Health,
        HttpAdapter,
        Metrics,
        Props,
        ProxyConfig,
        ResponseFormat,
        RetryPolicy,
        Started,
        TaskRequest,
        Timeouts,
        Token,
        TokenEvent,
        ToolCall,
        ToolSpec,
        Usage,
        WorkerAdapter,
        WorkerError,
        create_adapter,
        engine_names,
    )
    from conform.harness.stream import StreamRecord, collect
    from conform.stubs import Script, StubServer, start_stub

__all__ = [
    "AdapterOptions",
    "Answer",
    "Capability",
    "ChatMessage",
    "End",
    "EngineDescriptor",
    "EngineVersion",
    "ErrorKind",
    "Health",
    "HttpAdapter",
    "Metrics",
    "Props",
    "ProxyConfig",
    "ResponseFormat",
    "RetryPolicy",
    "Script",
    "Started",
    "StreamRecord",
    "StubServer",
    "TaskRequest",
    "Timeouts",
    "Token",
    "TokenEvent",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "WorkerAdapter",
    "WorkerError",
    "collect",
    "create_adapter",
    "engine_names",
    "start_stub",
]

_HOMES = {
    "Script": "conform.stubs",
    "StubServer": "conform.stubs",
    "start_stub": "conform.stubs",
    "StreamRecord": "conform.harness.stream",
    "collect": "conform.harness.stream",
}
"""Where each public name lives; every other one is in conform.adapters."""


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'conform' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES.get(name, "conform.adapters")), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
