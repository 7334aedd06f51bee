"""What conform checks and speaks, generated from the features and the engine descriptors, never written by
hand: ``conform list`` prints the checks; ``python -m conform.harness.catalogue`` prints the README's tables."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, cast

from gherkin.parser import Parser
from gherkin.token_scanner import TokenScanner
from pydantic import BaseModel, ConfigDict

from conform.adapters import engines
from conform.features import FEATURES_DIR

__all__ = ["CheckEntry", "check_catalogue", "check_table", "engine_table"]


class CheckEntry(BaseModel):
    """One check id: the feature it belongs to, its level, the capabilities it needs, and what must hold."""

    model_config = ConfigDict(frozen=True)

    id: str
    feature: str
    level: Literal["core", "extended"]
    needs: tuple[str, ...]
    description: str
    variants: int = 0
    """How many Examples rows it runs as (``id[row]``), or 0 for a plain scenario."""
    variant_ids: tuple[str, ...] = ()
    """What each row is called in results (``id[variant]``): its cells joined by ``-``."""
    tags: tuple[str, ...] = ()
    """Its Gherkin tags but the check id's (``needs_usage``, ``extended``, ``stub_only``)."""

    @property
    def result_ids(self) -> list[str]:
        """The ids its results carry: ``id[variant]`` per Examples row, else the id."""
        return [f"{self.id}[{variant}]" for variant in self.variant_ids] or [self.id]


def _entry(feature: str, scenario: dict[str, Any]) -> CheckEntry | None:
    tags = [str(tag["name"]).removeprefix("@") for tag in scenario["tags"]]
    check_id = next((tag.removeprefix("check:") for tag in tags if tag.startswith("check:")), None)
    if check_id is None:
        return None
    needs = [tag.removeprefix("needs_") for tag in tags if tag.startswith("needs_")]
    if "stub_only" in tags:
        needs.append("scripted_faults")
    rows = [row for examples in scenario.get("examples", []) for row in examples.get("tableBody", [])]
    return CheckEntry(
        id=check_id,
        feature=feature,
        level="extended" if "extended" in tags else "core",
        needs=tuple(needs),
        description=str(scenario["name"]),
        variants=len(rows),
        variant_ids=tuple("-".join(str(cell["value"]) for cell in row["cells"]) for row in rows),
        tags=tuple(tag for tag in tags if not tag.startswith("check:")),
    )


def check_catalogue(features: Path = FEATURES_DIR) -> list[CheckEntry]:
    """Every check id of the ``.feature`` files in `features` (a folder or one file), in file order."""
    paths = sorted(features.glob("*.feature")) if features.is_dir() else [features]
    entries: list[CheckEntry] = []
    for path in paths:
        document = cast(dict[str, Any], Parser().parse(TokenScanner(path.read_text(encoding="utf-8"))))
        feature = document["feature"]
        for child in feature["children"]:
            entry = _entry(str(feature["name"]), child["scenario"]) if "scenario" in child else None
            if entry is not None:
                entries.append(entry)
    return entries


LEVELS = ("core", "extended")


def selectable_tags(entries: Iterable[CheckEntry]) -> list[str]:
    """What ``--tags`` can name: feature names and levels, as reports show them, then the Gherkin tags."""
    entries = list(entries)
    features = sorted({e.feature for e in entries})
    tags = sorted({t for e in entries for t in e.tags} - set(LEVELS))
    return [*features, *LEVELS, *tags]


def check_table(entries: Iterable[CheckEntry]) -> str:
    """The README's "What is checked" table."""
    rows = ["| check id | feature | level | needs | what must hold |", "|---|---|---|---|---|"]
    for e in entries:
        suffix = "[…]" if e.variants else ""
        needs = ", ".join(e.needs) or "-"
        rows.append(f"| `{e.id}{suffix}` | {e.feature} | {e.level} | {needs} | {e.description} |")
    return "\n".join(rows)


def engine_table() -> str:
    """The README's engine table, from the installed engine descriptors."""
    rows = ["| `--engine` | what conform speaks | notes |", "|---|---|---|"]
    rows += [f"| `{d.name}` | {d.speaks} | {d.notes} |" for d in engines().values()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(engine_table(), check_table(check_catalogue()), sep="\n\n")
