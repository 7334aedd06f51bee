"""Each package's __all__ is sorted and names exactly what it exports."""

from __future__ import annotations

import importlib

import pytest


def _isort_style(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


@pytest.mark.parametrize("package", ["conform", "conform.adapters", "conform.stubs", "conform.reports"])
def test_all_is_sorted_and_complete(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    assert exported == sorted(exported, key=_isort_style), (
        f"{package}.__all__ is not sorted (constants, classes, functions)"
    )
    for name in exported:
        assert hasattr(module, name), f"{package}.__all__ names {name!r}, which it does not define"
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith(package + ".")
    }
    assert public <= set(exported), f"{package} exports {sorted(public - set(exported))} without listing them"
