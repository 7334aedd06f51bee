"""Engines: one descriptor each, found through the ``conform.engines`` entry point group.

Every list of engines (the CLI's choices, ``conform run``'s stub targets, the
pytest plugin's, the README's engine table) derives from the descriptors; no
registry is kept by hand. Adding an engine is one adapter module (with its
descriptor), one stub module, and one entry point line in ``pyproject.toml``;
another distribution can add its own engine the same way::

    [project.entry-points."conform.engines"]
    myengine = "my_package.conform_engine:ENGINE"
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .capabilities import Capability

if TYPE_CHECKING:
    from ._base import AdapterOptions, HttpAdapter

__all__ = [
    "ENTRY_POINT_GROUP",
    "EngineDescriptor",
    "UnknownEngineError",
    "create_adapter",
    "engine_name",
    "engine_names",
    "engines",
]

ENTRY_POINT_GROUP = "conform.engines"


@dataclass(frozen=True, slots=True)
class EngineDescriptor:
    """Everything conform knows of one engine."""

    name: str
    """The ``--engine`` name."""
    adapter: type[HttpAdapter]
    speaks: str
    """What conform speaks to it, for the engine table: endpoints and framing."""
    stub: Callable[[Any], Any] | None = None
    """The stub's aiohttp application factory (a StubContext in, a ``web.Application`` out), if it has one."""
    notes: str = ""
    default_port: int | None = None
    """Where the engine listens unless told otherwise."""
    rank: int = 100
    """Place in every list: the built-in engines come first, in the contract's order; others by name."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What the wire offers; probing a target removes what that server turns off."""
        return self.adapter.capabilities


class UnknownEngineError(ValueError):
    pass


@functools.cache
def engines() -> dict[str, EngineDescriptor]:
    """Every installed engine by name, in list order. Loaded once: entry points do not change in a process."""
    found: list[EngineDescriptor] = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        descriptor = entry.load()
        if not isinstance(descriptor, EngineDescriptor) or descriptor.name != entry.name:
            raise TypeError(
                f"entry point {entry.name} = {entry.value} ({ENTRY_POINT_GROUP}) must be an EngineDescriptor "
                f"named {entry.name!r}"
            )
        found.append(descriptor)
    return {d.name: d for d in sorted(found, key=lambda d: (d.rank, d.name))}


def engine_names() -> tuple[str, ...]:
    return tuple(engines())


def engine_name(given: str) -> str | None:
    """The engine `given` names, as people write it: any case, with or without dots, dashes and spaces
    (``llama.cpp``, ``LlamaCpp``, ``llama-swap``, ``Ollama``); None when it names none."""
    wanted = _folded(given)
    return next((name for name in engines() if _folded(name) == wanted), None)


def _folded(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def create_adapter(engine: str, base_url: str, options: AdapterOptions | None = None) -> HttpAdapter:
    known = engines()
    name = engine_name(engine)
    if name is None:
        raise UnknownEngineError(f"unknown engine {engine!r} (known: {', '.join(known)})")
    return known[name].adapter(base_url, options)
