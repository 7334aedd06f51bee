"""Comparing observed streams: the first divergent token, unique completions, logprob drift."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from conform.adapters import Token
from conform.reports import (
    CompletionGroup,
    Divergence,
    IdenticalRequests,
    LogprobDrift,
    RequestOutcome,
    Slot,
    StreamFailure,
    TokenRef,
)

__all__ = [
    "BURST",
    "Completion",
    "Observation",
    "compare_pairs",
    "first_divergence",
    "identical_requests",
    "judge_request",
]

BURST = "burst"
"""The mode of N identical copies of a request, K in flight at once (the unique-completions experiment)."""


_CONTEXT = 8
"""Tokens shown on each side of a divergence, so that a reader sees the two streams aligned."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One stream's generated tokens. Compared by ids where the engine gives them, else by text pieces."""

    ids: tuple[int | None, ...]
    texts: tuple[str, ...]
    logprobs: tuple[float | None, ...]

    @classmethod
    def from_tokens(cls, tokens: Sequence[Token]) -> Completion:
        return cls(tuple(t.token_id for t in tokens), tuple(t.text for t in tokens), tuple(t.logprob for t in tokens))

    @property
    def key(self) -> tuple[object, ...]:
        if self.ids and all(i is not None for i in self.ids):
            return self.ids
        return self.texts

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def token(self, index: int) -> TokenRef | None:
        if index >= len(self.texts):
            return None
        return TokenRef(id=self.ids[index], text=self.texts[index])


_NOTHING = Completion((), (), ())


@dataclass(frozen=True, slots=True)
class Observation:
    """A completion as seen in one slot: replica (None = golden file), mode, repeat number; or the failure of
    that slot's stream (then the completion is empty and takes part in no comparison)."""

    request_id: str
    slot: Slot
    completion: Completion
    overlap: int | None = None
    failure: StreamFailure | None = None

    @classmethod
    def failed(cls, request_id: str, slot: Slot, kind: str, detail: str) -> Observation:
        return cls(request_id, slot, _NOTHING, failure=StreamFailure(slot=slot, kind=kind, detail=detail))


def first_divergence(a: Sequence[object], b: Sequence[object]) -> int | None:
    """Index of the first position where a and b differ (a length difference counts); None if equal."""
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def _drift(a: Completion, b: Completion, rtol: float) -> int | None:
    """First index where both logprobs are known and differ beyond rtol (0 = bitwise)."""
    for index, (x, y) in enumerate(zip(a.logprobs, b.logprobs, strict=False)):
        if x is None or y is None:
            continue
        if rtol == 0.0:
            if x != y:
                return index
        elif not math.isclose(x, y, rel_tol=rtol, abs_tol=0.0):
            return index
    return None


def compare_pairs(
    kind: str, pairs: Sequence[tuple[Observation, Observation]], rtol: float
) -> tuple[list[Divergence], list[LogprobDrift]]:
    """Token divergences and (for pairs whose tokens agree) logprob drift, one entry per differing pair."""
    divergences: list[Divergence] = []
    drifts: list[LogprobDrift] = []
    for a, b in pairs:
        index = first_divergence(a.completion.key, b.completion.key)
        if index is not None:
            divergences.append(
                Divergence(
                    kind=kind,  # type: ignore[arg-type]
                    a=a.slot,
                    b=b.slot,
                    index=index,
                    common_prefix=index,
                    token_a=a.completion.token(index),
                    token_b=b.completion.token(index),
                    context=list(a.completion.texts[max(0, index - _CONTEXT) : index]),
                    after_a=list(a.completion.texts[index : index + _CONTEXT]),
                    after_b=list(b.completion.texts[index : index + _CONTEXT]),
                )
            )
            continue
        drift = _drift(a.completion, b.completion, rtol)
        if drift is not None:
            logprob_a = a.completion.logprobs[drift]
            logprob_b = b.completion.logprobs[drift]
            assert logprob_a is not None and logprob_b is not None
            drifts.append(
                LogprobDrift(kind=kind, a=a.slot, b=b.slot, index=drift, logprob_a=logprob_a, logprob_b=logprob_b)  # type: ignore[arg-type]
            )
    return divergences, drifts


def identical_requests(burst: Sequence[Observation], concurrency: int) -> tuple[IdenticalRequests, Divergence | None]:
    """The experiment's figures for one request's burst (its completed streams): each distinct completion with
    its count, most common first; where every other stream first leaves the most common one; and that first
    divergence as a Divergence (kind repeat), the one the report names."""
    counts = Counter(o.completion.key for o in burst)
    ranked = counts.most_common()
    example = {o.completion.key: o for o in reversed(burst)}  # the first stream that gave each completion
    common = example[ranked[0][0]] if ranked else None
    positions: list[int] = []
    first: tuple[Observation, Observation] | None = None
    for observation in burst:
        if common is None or observation.completion.key == common.completion.key:
            continue
        position = first_divergence(common.completion.key, observation.completion.key)
        positions.append(position if position is not None else 0)
        first = first or (common, observation)
    figures = IdenticalRequests(
        requests=len(burst),
        concurrency=concurrency,
        completions=[CompletionGroup(count=n, text=example[key].completion.text[:80]) for key, n in ranked],
        divergence_positions=positions,
        divergence_min=min(positions) if positions else None,
        divergence_median=statistics.median(positions) if positions else None,
        divergence_max=max(positions) if positions else None,
    )
    divergence = compare_pairs("repeat", [first], 0.0)[0][0] if first else None
    return figures, divergence


def judge_request(
    request_id: str,
    observations: Sequence[Observation],
    baseline: Observation | None,
    rtol: float,
    concurrency: int = 1,
) -> RequestOutcome:
    """Every comparison the observations allow, from the cheapest explanation to the broadest.

    repeat: repeats within one replica and mode; load: solo vs under load, per
    replica; cache: solo (cache off) vs cache on, per replica; replica: every
    replica's first solo run vs replica 0's; baseline: the golden file vs each
    replica's first solo run. A failed stream is listed and left out; every comparison
    of the streams that completed is still made. A burst (N identical copies, `concurrency`
    at a time) gives the unique-completions figures and names its first divergence.
    """
    failures = [o.failure for o in observations if o.failure is not None]
    observations = [o for o in observations if o.failure is None]
    burst = [o for o in observations if o.slot.mode == BURST]
    observations = [o for o in observations if o.slot.mode != BURST]
    by_slot = {(o.slot.replica, o.slot.mode, o.slot.repeat): o for o in observations}
    replicas = sorted({o.slot.replica for o in observations if o.slot.replica is not None})
    modes = sorted({o.slot.mode for o in observations})
    pairs: dict[str, list[tuple[Observation, Observation]]] = {k: [] for k in ("repeat", "load", "cache", "replica")}
    for replica in replicas:
        for mode in modes:
            runs = sorted(
                (o for o in observations if o.slot.replica == replica and o.slot.mode == mode),
                key=lambda o: o.slot.repeat,
            )
            pairs["repeat"] += [(runs[0], other) for other in runs[1:]]
        solo = by_slot.get((replica, "solo", 0))
        if solo is None:
            continue
        for mode in ("load", "cache"):
            other = by_slot.get((replica, mode, 0))
            if other is not None:
                pairs[mode].append((solo, other))
    first_solo = by_slot.get((replicas[0], "solo", 0)) if replicas else None
    if first_solo is not None:
        for replica in replicas[1:]:
            other = by_slot.get((replica, "solo", 0))
            if other is not None:
                pairs["replica"].append((first_solo, other))
    divergences: list[Divergence] = []
    drifts: list[LogprobDrift] = []
    for kind, kind_pairs in pairs.items():
        found, drifted = compare_pairs(kind, kind_pairs, rtol)
        divergences += found
        drifts += drifted
    if baseline is not None:
        solos = [by_slot[(r, "solo", 0)] for r in replicas if (r, "solo", 0) in by_slot]
        found, drifted = compare_pairs("baseline", [(baseline, s) for s in solos], rtol)
        divergences += found
        drifts += drifted
    figures = None
    if burst:
        figures, burst_divergence = identical_requests(burst, concurrency)
        divergences += [burst_divergence] if burst_divergence is not None else []
    everything = [*observations, *burst, *([baseline] if baseline is not None else [])]
    overlaps = [o.overlap for o in observations if o.overlap is not None]
    return RequestOutcome(
        id=request_id,
        verdict="diverged" if divergences else "identical",
        unique_completions=len({o.completion.key for o in everything}),
        divergences=divergences,
        logprob_drift=drifts,
        load_overlap=min(overlaps) if overlaps else None,
        failures=failures,
        identical_requests=figures,
    )
