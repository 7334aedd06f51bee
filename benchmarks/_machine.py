"""What the machine itself did during a measurement: the share of CPU time the hypervisor took (steal)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuTicks", "steal_between"]

_STEAL_FIELD = 7
"""/proc/stat's "cpu" line: user nice system idle iowait irq softirq steal guest guest_nice."""


@dataclass(frozen=True, slots=True)
class CpuTicks:
    steal: int
    total: int

    @classmethod
    def now(cls) -> CpuTicks | None:
        """All CPUs' ticks so far; None where /proc/stat does not exist."""
        try:
            first = Path("/proc/stat").read_text().splitlines()[0].split()
        except (OSError, IndexError):
            return None
        ticks = [int(field) for field in first[1:9]]
        return cls(ticks[_STEAL_FIELD], sum(ticks))

    def steal_since(self, earlier: CpuTicks | None) -> float | None:
        """The share of CPU time since `earlier` that the hypervisor gave to other machines."""
        if earlier is None or self.total <= earlier.total:
            return None
        return (self.steal - earlier.steal) / (self.total - earlier.total)


def steal_between(before: CpuTicks | None, after: CpuTicks | None) -> str:
    """ "CPU steal 3.1%", or "" where it cannot be read."""
    share = after.steal_since(before) if after is not None else None
    return "" if share is None else f"CPU steal {share:.1%}"
