"""conform installs as one package, and its plugin neither imports nor shadows anything of a user's repo."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO

pytest_plugins = ["pytester"]


@pytest.mark.slow
def test_the_wheel_installs_exactly_one_top_level_package(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "__pycache__", ".hypothesis"),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = tmp_path.glob("conform-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"conform", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, sorted(top)
    for package in ("adapters", "stubs", "harness", "reports", "features"):
        assert f"conform/{package}/__init__.py" in names, f"conform.{package} is in the wheel"
    assert "conform/reports/schema/report.v1.schema.json" in names
    assert any(name.startswith("conform/features/") and name.endswith(".feature") for name in names)


_USER_PACKAGES = {
    "adapters/__init__.py": "KIND = 'the user adapters'\n",
    "reports/__init__.py": "class CapabilitySummary:\n    owner = 'user'\n",
    "features/__init__.py": "STEPS = 'the user features'\n",
    "harness/__init__.py": "NAME = 'the user harness'\n",
    "stubs/__init__.py": "NAME = 'the user stubs'\n",
}


@pytest.fixture
def user_repo(pytester: pytest.Pytester) -> pytest.Pytester:
    """A repository with packages named like conform's folders, a conftest using them, and a test."""
    for path, text in _USER_PACKAGES.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    pytester.makeconftest("from reports import CapabilitySummary\nfrom adapters import KIND\n")
    pytester.makepyfile(
        test_own_packages="""
        import sys

        import adapters, features, harness, reports, stubs


        def test_own_packages_are_the_users():
            assert adapters.KIND == "the user adapters"
            assert reports.CapabilitySummary.owner == "user"
            assert features.STEPS == "the user features" and harness.NAME == "the user harness"
            assert stubs.NAME == "the user stubs"


        def test_conform_plugin_is_loaded_but_inert(pytestconfig):
            assert pytestconfig.pluginmanager.hasplugin("conform")
            heavy = [m for m in ("conform.adapters", "conform.stubs", "conform.reports", "aiohttp") if m in sys.modules]
            assert heavy == [], f"the inert plugin imported {heavy}"
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


@pytest.mark.parametrize("runner", ["pytest", "python -m pytest"])
def test_a_repo_with_packages_named_like_ours_runs_its_own_tests(user_repo: pytest.Pytester, runner: str) -> None:
    command = (
        [str(Path(sys.executable).with_name("pytest"))] if runner == "pytest" else [sys.executable, "-m", "pytest"]
    )
    result = user_repo.run(*command, "-p", "no:cacheprovider", "-q", timeout=300)
    assert result.ret == 0, result.stdout.str()[-3000:] + result.stderr.str()[-3000:]
    result.assert_outcomes(passed=2)
