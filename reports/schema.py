"""The JSON Schema of the report, generated from the model and shipped in reports/schema/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from .model import SCHEMA_VERSION, Report

__all__ = ["SCHEMA_PATH", "ReportSchemaError", "generate_schema", "load_schema", "validate_report"]

SCHEMA_PATH = Path(__file__).parent / "schema" / f"report.v{SCHEMA_VERSION}.schema.json"


class ReportSchemaError(ValueError):
    """A report document that does not match the schema; the message names the field."""


def generate_schema() -> dict[str, Any]:
    schema = Report.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://conform.dev/schema/report.v{SCHEMA_VERSION}.schema.json",
        **schema,
    }


def load_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def validate_report(document: Any) -> None:
    validator = Draft202012Validator(load_schema())
    error = next(iter(sorted(validator.iter_errors(document), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p).encode("unicode_escape").decode() for p in error.absolute_path) or "(top level)"
        raise ReportSchemaError(f"report field {where}: {error.message}")


if __name__ == "__main__":
    SCHEMA_PATH.write_text(json.dumps(generate_schema(), indent=2) + "\n", encoding="utf-8")
    print(SCHEMA_PATH)
