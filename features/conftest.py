"""Binds every scenario here to the conform runtime and loads the steps (and the autouse target fixture)."""

from conform.features.steps.all import *  # noqa: F403  (pytest-bdd steps are fixtures: import them here)
