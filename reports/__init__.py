"""Reports: the compliance report model, its JSON Schema, and the writers."""

from ._atomic import write_atomic
from .model import (
    SCHEMA_VERSION,
    CapabilitySummary,
    CheckResult,
    Implementation,
    Report,
    Summary,
    TargetInfo,
    ToolInfo,
    summarize,
    verdict,
)
from .schema import SCHEMA_PATH, ReportSchemaError, generate_schema, validate_report
from .writers import write_json_report

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "CapabilitySummary",
    "CheckResult",
    "Implementation",
    "Report",
    "ReportSchemaError",
    "Summary",
    "TargetInfo",
    "ToolInfo",
    "generate_schema",
    "summarize",
    "validate_report",
    "verdict",
    "write_atomic",
    "write_json_report",
]
