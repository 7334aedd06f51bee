"""Infer a target's capabilities and provenance by asking it.

Probing only ever removes a capability the engine's protocol offers when the
server positively shows it is off (e.g. /slots disabled). A probe that fails
removes nothing: a broken engine must fail its checks, not have them skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters import Capability, EngineVersion, HttpAdapter, WorkerError

__all__ = ["TargetProfile", "probe"]


@dataclass(frozen=True, slots=True)
class TargetProfile:
    supported: frozenset[Capability]
    unsupported: frozenset[Capability]
    version: EngineVersion = field(default_factory=EngineVersion)
    source: str = "inferred"
    notes: tuple[str, ...] = ()


async def probe(adapter: HttpAdapter, *, is_stub: bool) -> TargetProfile:
    offered = set(adapter.capabilities)
    if is_stub:
        # A stub plays scripted faults, and its default script keeps the batch-invariance promise.
        offered |= {Capability.SCRIPTED_FAULTS, Capability.BATCH_INVARIANCE}
    removed: set[Capability] = set()
    notes: list[str] = []
    version = EngineVersion()
    try:
        version = await adapter.engine_version()
        if version.model_digest is None:
            removed.add(Capability.MODEL_DIGEST)
    except WorkerError as error:
        notes.append(f"engine_version: {error}")
    if Capability.ENGINE_SIDE_CANCEL in offered:
        try:
            if (await adapter.props()).busy_slots is None:
                removed.add(Capability.ENGINE_SIDE_CANCEL)
                notes.append("the engine does not report slot activity (/slots off)")
        except WorkerError as error:
            notes.append(f"props: {error}")
    every = set(Capability)
    supported = offered - removed
    return TargetProfile(frozenset(supported), frozenset(every - supported), version, "inferred", tuple(notes))
