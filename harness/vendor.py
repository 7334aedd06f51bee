"""Implementation metadata for a published report (--vendor FILE): who made what, in which version."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from conform.reports import Implementation

__all__ = ["load_vendor"]


def load_vendor(path: Path) -> Implementation:
    """Read a JSON object of organization, project, version, url, contact; errors name the file and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read vendor file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: the vendor file is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}") from None
    try:
        return Implementation.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p).encode("unicode_escape").decode() for p in first["loc"]) or "(top level)"
        raise ValueError(f"{path}: field {where}: {first['msg']}") from None
