"""Writers: every artifact comes from the one Report model and is written atomically."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ._atomic import write_atomic
from .junit import render_junit
from .model import Report
from .render import render_html, render_markdown
from .schema import ReportSchemaError, validate_report
from .signature import sign

__all__ = [
    "ReportFileError",
    "load_report",
    "write_html_report",
    "write_json_report",
    "write_junit_report",
    "write_markdown_report",
]


class ReportFileError(ValueError):
    """A report file that cannot be used; the message names the file (and field)."""


def load_report(path: Path) -> Report:
    """Read and validate a report written by conform (any schema-valid report)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportFileError(f"{path}: cannot read report: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ReportFileError(f"{path}: the report is not UTF-8 text") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportFileError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    try:
        validate_report(document)
    except ReportSchemaError as exc:
        raise ReportFileError(f"{path}: {exc}") from None
    return Report.model_validate(document)


def write_markdown_report(report: Report, path: Path) -> None:
    write_atomic(path, render_markdown(report))


def write_junit_report(report: Report, path: Path) -> None:
    write_atomic(path, render_junit(report))


def write_html_report(report: Report, path: Path) -> None:
    write_atomic(path, render_html(report))


def write_json_report(report: Report, path: Path, sign_key: Ed25519PrivateKey | None = None) -> None:
    """Validate against the shipped schema, then write (signed with `sign_key` if given); an invalid report is
    a bug, never a file."""
    text = report.to_json(None if sign_key is None else partial(sign, key=sign_key))
    validate_report(json.loads(text))
    write_atomic(path, text)
