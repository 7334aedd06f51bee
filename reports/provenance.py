"""Which build a report speaks of: the version an engine reports, unless it names no build, and the label a
user declares (``--engine-version``), which wins and is recorded as declared.

Builds compiled without version metadata report placeholders (llama.cpp from a source archive says
``b0-unknown``): two different builds then report the same string. Such a version is unknown, and two
unknown versions never compare equal.
"""

from __future__ import annotations

import re
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

__all__ = [
    "VersionSource",
    "Versioned",
    "compare_provenance",
    "compare_versions",
    "identifies_build",
    "versioned",
    "versioned_as_recorded",
]

VersionSource = Literal["reported", "declared", "unknown"]

_PLACEHOLDER = re.compile(r"(^|[^a-z])(unknown|none|null|n/a)([^a-z]|$)|^b?0$", re.IGNORECASE)
"""What engines report when they were built without knowing their version."""


def identifies_build(version: str | None) -> bool:
    """Whether a reported version names a build: not empty, not a placeholder such as ``b0-unknown``."""
    return bool(version and version.strip()) and not _PLACEHOLDER.search(str(version).strip())


class Versioned(BaseModel):
    """The version to compare builds by, where it came from, and what the engine itself said."""

    model_config = ConfigDict(frozen=True)

    engine_version: str | None
    """The declared label, else the reported version when it names a build, else None (unknown)."""
    engine_version_source: VersionSource
    engine_version_reported: str | None
    """What the engine reported, verbatim (``b0-unknown`` too)."""

    def describe(self) -> str:
        """For people: ``b11434 (declared)``, ``0.11.2``, or ``unknown (the engine says 'b0-unknown')``."""
        if self.engine_version is None:
            said = f" (the engine says {self.engine_version_reported!r})" if self.engine_version_reported else ""
            return f"unknown{said}"
        return self.engine_version + (" (declared)" if self.engine_version_source == "declared" else "")


def versioned(reported: str | None, declared: str | None = None) -> Versioned:
    if declared:
        return Versioned(engine_version=declared, engine_version_source="declared", engine_version_reported=reported)
    if identifies_build(reported):
        return Versioned(engine_version=reported, engine_version_source="reported", engine_version_reported=reported)
    return Versioned(engine_version=None, engine_version_source="unknown", engine_version_reported=reported)


def compare_versions(before: Versioned, after: Versioned) -> str:
    """One line saying what an upgrade comparison compares, or that it cannot tell the builds apart."""
    if before.engine_version is None or after.engine_version is None:
        return (
            f"engine version {before.describe()} → {after.describe()}: the builds cannot be told apart from "
            "what they report; name them with --engine-version"
        )
    if before.engine_version == after.engine_version:
        return f"engine version {before.describe()} on both sides: the same build"
    return f"engine version {before.describe()} → {after.describe()}"


def versioned_as_recorded(engine_version: str | None, source: VersionSource | None, reported: str | None) -> Versioned:
    """The provenance a report or golden file recorded (one written before sources were recorded: reported)."""
    return Versioned(
        engine_version=engine_version,
        engine_version_source=source or ("reported" if engine_version else "unknown"),
        engine_version_reported=reported,
    )


class _Recorded(Protocol):
    """What a report records of a build: a target or a replica."""

    @property
    def engine_version(self) -> str | None: ...

    @property
    def engine_version_source(self) -> VersionSource | None: ...

    @property
    def engine_version_reported(self) -> str | None: ...

    @property
    def model(self) -> str | None: ...

    @property
    def model_digest(self) -> str | None: ...


def _as_recorded(info: _Recorded) -> Versioned:
    return versioned_as_recorded(info.engine_version, info.engine_version_source, info.engine_version_reported)


def compare_provenance(before: _Recorded, after: _Recorded) -> str:
    """The builds and the models an upgrade comparison compares, in one line."""
    same_model = before.model_digest is not None and before.model_digest == after.model_digest
    model = (
        "the same model digest"
        if same_model
        else f"model {before.model_digest or before.model} → {after.model_digest or after.model}"
    )
    return f"{compare_versions(_as_recorded(before), _as_recorded(after))}; {model}"
