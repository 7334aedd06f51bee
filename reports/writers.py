"""Writers: every artifact comes from the one Report model and is written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from ._atomic import write_atomic
from .model import Report
from .schema import validate_report

__all__ = ["write_json_report"]


def write_json_report(report: Report, path: Path) -> None:
    """Validate against the shipped schema, then write; an invalid report is a bug, never a file."""
    text = report.to_json()
    validate_report(json.loads(text))
    write_atomic(path, text)
