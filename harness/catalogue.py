"""Tables of the README that are generated, not written: ``python -m conform.harness.catalogue`` prints them."""

from __future__ import annotations

from conform.adapters import engines

__all__ = ["engine_table"]


def engine_table() -> str:
    """The README's engine table, from the installed engine descriptors."""
    rows = ["| `--engine` | what conform speaks | notes |", "|---|---|---|"]
    rows += [f"| `{d.name}` | {d.speaks} | {d.notes} |" for d in engines().values()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(engine_table())
