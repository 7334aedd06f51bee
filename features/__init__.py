"""Conformance features (Gherkin) and their step definitions; shipped with the package."""

from pathlib import Path

FEATURES_DIR = Path(__file__).parent

__all__ = ["FEATURES_DIR"]
