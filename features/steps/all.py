"""Every step of the built-in features, for pytest to load as one plugin (``-p features.steps.all``)."""

import pytest

from conform.features.steps.conformance_steps import *  # noqa: F403  (pytest-bdd steps are fixtures: import them here)
from conform.features.steps.determinism_steps import *  # noqa: F403
from conform.features.steps.engine_steps import *  # noqa: F403
from conform.features.steps.llamaswap_steps import *  # noqa: F403
from conform.features.steps.openai_steps import *  # noqa: F403
from conform.features.steps.tool_steps import *  # noqa: F403
from conform.harness.runtime import ScenarioRuntime


@pytest.fixture(autouse=True)
def conform_scenario(conform_runtime: ScenarioRuntime) -> ScenarioRuntime:
    """Every scenario runs against a target: this pulls conform_target into each test's parametrization."""
    return conform_runtime
