"""Golden files: the streams a target produced, recorded to compare a later build against.

JSONL, one line per request: the request, the provenance of the replica that
answered, the token ids and the text (and logprobs where the engine gave them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from conform.reports import ReplicaInfo, Slot
from conform.reports.model import PROVENANCE
from conform.reports.provenance import VersionSource

from .compare import Completion, Observation
from .corpus import CorpusRequest, read_jsonl

__all__ = ["GoldenLine", "golden_line", "golden_provenance", "load_golden"]


class GoldenLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request: CorpusRequest
    engine_version: str | None
    engine_version_source: VersionSource | None = None
    engine_version_reported: str | None = None
    model: str | None
    model_digest: str | None
    token_ids: list[int | None]
    text: str
    pieces: list[str]
    logprobs: list[float | None] | None = None

    def observation(self) -> Observation:
        completion = Completion(
            tuple(self.token_ids),
            tuple(self.pieces),
            tuple(self.logprobs) if self.logprobs is not None else (None,) * len(self.pieces),
        )
        return Observation(self.request.id, Slot(replica=None, mode="baseline"), completion)


def golden_line(request: CorpusRequest, solo: Observation, provenance: ReplicaInfo) -> GoldenLine:
    """The golden line of one request: replica 0's first solo stream, and what answered it."""
    completion = solo.completion
    logprobs = list(completion.logprobs) if any(lp is not None for lp in completion.logprobs) else None
    return GoldenLine(
        request=request,
        **provenance.model_dump(include=set(PROVENANCE)),
        token_ids=list(completion.ids),
        text=completion.text,
        pieces=list(completion.texts),
        logprobs=logprobs,
    )


def golden_provenance(path: Path, golden: Sequence[GoldenLine]) -> ReplicaInfo:
    """The provenance a golden file was recorded on (its first line's), named by the file."""
    return ReplicaInfo(url=str(path), **golden[0].model_dump(include=set(PROVENANCE)))


def load_golden(path: Path) -> list[GoldenLine]:
    return [line for _, line in read_jsonl(path, GoldenLine, "golden file")]
