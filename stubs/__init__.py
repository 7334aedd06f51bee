"""Stub engines: fake inference servers that speak each engine's wire format, with scripted faults."""

from ._engine import Generation, StubState
from ._precise_loop import precise_event_loop
from .script import Fault, Framing, Script, ScriptError, load_script
from .server import StubServer, UnknownEngineError, start_stub, stub_engines
from .timeline import Timeline, TimelineError, TimelineGeneration, load_timeline
from .tokens import StubToken, generate_tokens

__all__ = [
    "Fault",
    "Framing",
    "Generation",
    "Script",
    "ScriptError",
    "StubServer",
    "StubState",
    "StubToken",
    "Timeline",
    "TimelineError",
    "TimelineGeneration",
    "UnknownEngineError",
    "generate_tokens",
    "load_script",
    "load_timeline",
    "precise_event_loop",
    "start_stub",
    "stub_engines",
]
