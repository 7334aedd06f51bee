"""Latency from a monotonic clock: time to first token, inter-token latency, throughput.

Every stream a run makes contributes; the summary per target gives p50/p90/p99
in milliseconds and the tokens per second of the streams that completed.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conform.reports import LatencySummary, Percentiles

__all__ = ["StreamTiming", "exempt_startup_objects", "percentile", "stream_timing", "summarize_latency"]


def exempt_startup_objects() -> None:
    """Keep the objects alive now (imported modules, the app) out of every later garbage collection.

    A full collection walks every tracked object: with aiohttp and pydantic
    loaded, that takes milliseconds, and whichever tokens arrived meanwhile were
    stamped that much late. Frozen, the objects of start-up are never walked again, and a
    collection costs what the run itself has allocated.
    """
    gc.collect()
    gc.freeze()


@dataclass(frozen=True, slots=True)
class StreamTiming:
    ttft_s: float
    itl_s: tuple[float, ...]
    tokens: int
    duration_s: float
    """From sending the request to the last token."""

    def to_json(self) -> dict[str, object]:
        return {"ttft_s": self.ttft_s, "itl_s": list(self.itl_s), "tokens": self.tokens, "duration_s": self.duration_s}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> StreamTiming:
        return cls(
            float(data["ttft_s"]),  # type: ignore[arg-type]
            tuple(float(x) for x in data["itl_s"]),  # type: ignore[attr-defined]
            int(data["tokens"]),  # type: ignore[call-overload]
            float(data["duration_s"]),  # type: ignore[arg-type]
        )


def stream_timing(sent_at: float, token_times: Sequence[float]) -> StreamTiming | None:
    """None for a stream without tokens: it has no first token to time."""
    if not token_times:
        return None
    gaps = tuple(b - a for a, b in itertools.pairwise(token_times))
    return StreamTiming(token_times[0] - sent_at, gaps, len(token_times), token_times[-1] - sent_at)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("no values")
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _percentiles_ms(values: Iterable[float]) -> Percentiles | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return Percentiles(
        p50=round(percentile(ordered, 0.5) * 1000, 3),
        p90=round(percentile(ordered, 0.9) * 1000, 3),
        p99=round(percentile(ordered, 0.99) * 1000, 3),
    )


def summarize_latency(timings: Iterable[StreamTiming]) -> LatencySummary | None:
    streams = list(timings)
    if not streams:
        return None
    tokens = sum(t.tokens for t in streams)
    busy = sum(t.duration_s for t in streams)
    return LatencySummary(
        streams=len(streams),
        tokens=tokens,
        ttft_ms=_percentiles_ms(t.ttft_s for t in streams),
        itl_ms=_percentiles_ms(gap for t in streams for gap in t.itl_s),
        tokens_per_s=round(tokens / busy, 2) if busy > 0 else None,
    )
