"""Infer a target's capabilities and provenance by asking it.

Probing only ever removes a capability the engine's protocol offers when the
server positively shows it is off (e.g. /slots disabled). A probe that fails
removes nothing: a broken engine must fail its checks, not have them skipped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal

from conform.adapters import Capability, EngineVersion, HttpAdapter, WorkerError

__all__ = ["TargetProfile", "parse_capabilities", "probe"]


@dataclass(frozen=True, slots=True)
class TargetProfile:
    supported: frozenset[Capability]
    unsupported: frozenset[Capability]
    version: EngineVersion = field(default_factory=EngineVersion)
    source: Literal["inferred", "declared"] = "inferred"

    def declare(self, supported: frozenset[Capability], exempt: frozenset[Capability]) -> TargetProfile:
        """The profile with capabilities declared on the command line: `supported` added, `exempt` removed."""
        if not supported and not exempt:
            return self
        kept = (self.supported | supported) - exempt
        return TargetProfile(frozenset(kept), frozenset(set(Capability) - kept), self.version, "declared")


def parse_capabilities(text: str | None, option: str) -> frozenset[Capability]:
    """A comma-separated list of capability names; an unknown name is a ValueError naming the option."""
    try:
        return Capability.parse(text or "")
    except ValueError as error:
        raise ValueError(f"{option}: {error}") from None


async def probe(adapter: HttpAdapter, *, is_stub: bool) -> TargetProfile:
    offered = set(adapter.capabilities)
    if adapter.options.api_key:
        offered.add(Capability.AUTH)
    if is_stub:
        # A stub plays scripted faults, and its default script keeps the batch-invariance promise; where its
        # wire carries tools, it calls two at once when allowed.
        offered |= {Capability.SCRIPTED_FAULTS, Capability.BATCH_INVARIANCE}
        if Capability.TOOLS in offered:
            offered.add(Capability.PARALLEL_TOOLS)
    removed: set[Capability] = set()
    version = EngineVersion()
    # A failed probe removes nothing (see above): its errors are left for the checks to report.
    with contextlib.suppress(WorkerError):
        version = await adapter.engine_version()
        if version.model_digest is None:
            removed.add(Capability.MODEL_DIGEST)
    if Capability.ENGINE_SIDE_CANCEL in offered:
        with contextlib.suppress(WorkerError):
            if (await adapter.props()).busy_slots is None:  # /slots turned off: nothing can prove a stop
                removed.add(Capability.ENGINE_SIDE_CANCEL)
    if Capability.METRICS in offered:
        try:
            await adapter.metrics()
        except WorkerError as error:
            if error.status is not None:  # started without --metrics (501), or no such endpoint (404)
                removed.add(Capability.METRICS)
    supported = offered - removed
    return TargetProfile(frozenset(supported), frozenset(set(Capability) - supported), version)
