"""The shipped JSON Schema is the model's own, and reports validate against it."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator

from conform.reports import SCHEMA_PATH, ReportSchemaError, generate_schema, validate_report


def test_shipped_schema_matches_the_model() -> None:
    shipped = json.loads(SCHEMA_PATH.read_text())
    assert shipped == generate_schema(), (
        "reports/schema drifted from reports/model.py: regenerate with `python -m conform.reports.schema`"
    )


def test_shipped_schema_is_a_valid_draft_2020_12_schema() -> None:
    shipped = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(shipped)  # raises SchemaError naming what is wrong
    assert Draft202012Validator.META_SCHEMA["$id"].startswith(shipped["$schema"].rstrip("#"))


def _minimal() -> dict:
    return {
        "schema_version": "1",
        "tool": {"name": "conform", "version": "0.1.0"},
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:05Z",
        "reproduce": "conform run",
        "implementation": {
            "organization": None,
            "project": None,
            "version": None,
            "url": None,
            "contact": [],
        },
        "targets": [
            {
                "engine": "llamacpp",
                "url": "http://127.0.0.1:8080",
                "engine_version": None,
                "model": None,
                "model_digest": None,
                "capabilities": {"supported": ["streaming"], "unsupported": [], "source": "inferred"},
            }
        ],
        "result": "conformant",
        "summary": {"passed": 1, "failed": 0, "skipped": 0, "errors": 0},
        "results": [
            {
                "id": "stream.ordering",
                "feature": "ordering",
                "scenario": "tokens arrive in index order",
                "engine": "llamacpp",
                "level": "core",
                "status": "passed",
                "duration_s": 0.1,
                "detail": None,
            }
        ],
    }


def test_the_contract_example_validates() -> None:
    validate_report(_minimal())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["results"][0].update(status="maybe"), "results/0/status"),
        (lambda d: d["targets"][0].pop("model_digest"), "targets/0"),
        (lambda d: d.update(result="great"), "result"),
        (lambda d: d.pop("reproduce"), "(top level)"),
    ],
)
def test_invalid_reports_name_the_field(mutate, field: str) -> None:
    document = _minimal()
    mutate(document)
    with pytest.raises(ReportSchemaError, match=re.escape(f"report field {field}")):
        validate_report(document)


def test_reported_tool_version_is_the_package_version() -> None:
    from importlib.metadata import version

    from conform.reports import TOOL_VERSION

    assert version("conform") == TOOL_VERSION
