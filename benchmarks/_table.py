"""One row per measurement: our figure, the alternative's, the ratio, the target, pass or miss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Row", "render"]


@dataclass(frozen=True)
class Row:
    name: str
    ours: float
    unit: str
    target: str
    passed: bool | None
    """None when the row has no target (information only)."""
    theirs: float | None = None
    alternative: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.theirs is None or self.theirs == 0:
            return None
        return self.ours / self.theirs


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render(rows: Sequence[Row], markdown: bool = False) -> str:
    header = ["benchmark", "ours", "alternative", "theirs", "ratio", "target", "result"]
    body = []
    for row in rows:
        result = "-" if row.passed is None else ("pass" if row.passed else "MISS")
        body.append(
            [
                row.name,
                f"{_number(row.ours)} {row.unit}",
                row.alternative or "-",
                f"{_number(row.theirs)} {row.unit}" if row.theirs is not None else "-",
                f"{row.ratio:.2f}x" if row.ratio is not None else "-",
                row.target or "-",
                result,
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
        return "\n".join(lines + (["", *notes] if notes else []))
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

    lines = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(cells) for cells in body)]
    lines += [f"  {r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(lines)
