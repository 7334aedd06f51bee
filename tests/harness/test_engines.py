"""Every list of engines derives from the installed descriptors: an engine added by another distribution
(here, a test's own) shows up in the CLI's choices, `conform run`'s stub targets and the plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conform.adapters import EngineDescriptor, engines
from conform.harness.catalogue import engine_table
from tests.helpers import CONFORM, README

_PARROT = """
from conform.adapters import EngineDescriptor
from conform.adapters.echo import EchoAdapter
from conform.stubs.echo import create_app


class ParrotAdapter(EchoAdapter):
    engine = "parrot"


ENGINE = EngineDescriptor(name="parrot", adapter=ParrotAdapter, speaks="the echo wire, again", stub=create_app)
"""


@pytest.fixture
def parrot_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which a distribution of the test's own declares the engine `parrot`."""
    site = tmp_path / "site"
    (site / "parrot_engine-1.0.dist-info").mkdir(parents=True)
    (site / "parrot_engine.py").write_text(_PARROT, encoding="utf-8")
    (site / "parrot_engine-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: parrot-engine\nVersion: 1.0\n", encoding="utf-8"
    )
    (site / "parrot_engine-1.0.dist-info" / "entry_points.txt").write_text(
        "[conform.engines]\nparrot = parrot_engine:ENGINE\n", encoding="utf-8"
    )
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def _run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args], capture_output=True, text=True, env=env, timeout=600, cwd=cwd)


def test_the_built_in_engines_come_in_the_contracts_order() -> None:
    assert list(engines()) == [
        "llamacpp",
        "vllm",
        "tgi",
        "triton",
        "openai",
        "responses",
        "anthropic",
        "llamaswap",
        "ollama",
        "echo",
    ]
    assert all(isinstance(d, EngineDescriptor) and d.stub is not None for d in engines().values())


def test_an_engine_of_another_distribution_is_a_cli_choice(parrot_env: dict[str, str]) -> None:
    shown = _run(parrot_env, *CONFORM, "run", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "parrot" in shown.stdout
    stub_help = _run(parrot_env, *CONFORM, "stub", "--help")
    assert "parrot" in stub_help.stdout


@pytest.mark.slow
def test_an_engine_of_another_distribution_is_run_on_its_stub(parrot_env: dict[str, str], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    ordering = Path(__file__).resolve().parents[2] / "features" / "ordering.feature"
    # -v: the matrix, which a pipe gets only when asked
    ran = _run(parrot_env, *CONFORM, "run", "--features", str(ordering), "--report", str(report), "-v")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "parrot@stub" in ran.stdout
    targets = [t["label"] for t in json.loads(report.read_text())["targets"]]
    assert targets[-1] == "parrot@stub" and len(targets) == len(engines()) + 1


@pytest.mark.slow
def test_an_engine_of_another_distribution_is_a_plugin_target(parrot_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(
        "def test_parrot_is_healthy(conform_runtime, conform_adapter, conform_target):\n"
        "    assert conform_target.engine == 'parrot'\n"
        "    assert conform_runtime.run(conform_adapter.health()).ready\n",
        encoding="utf-8",
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    ran = _run(
        parrot_env,
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--conform-stub",
        "parrot",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "1 passed" in ran.stdout


def test_the_readme_engine_table_is_the_descriptors() -> None:
    assert engine_table() in README.read_text(encoding="utf-8"), (
        "README's engine table drifted from the descriptors: paste `python -m conform.harness.catalogue` over it"
    )
