"""Binds every scenario here to the conform runtime and loads the shared steps."""

import pytest

from features.steps.determinism_steps import *  # noqa: F403  (pytest-bdd steps are fixtures: import them here)
from features.steps.engine_steps import *  # noqa: F403
from harness.runtime import ScenarioRuntime


@pytest.fixture(autouse=True)
def _conform_scenario(conform_runtime: ScenarioRuntime) -> ScenarioRuntime:
    """Every scenario runs against a target: this pulls conform_target into each test's parametrization."""
    return conform_runtime
