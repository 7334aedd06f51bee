"""The conform pytest plugin (entry point ``pytest11: conform``).

Installed plugins load in every pytest session of every repository, so this
module imports nothing of conform's: it adds the ``--conform-*`` options and
the ``conform_target`` fixture, and stays inert. Given any conform option (or
an ini default), it imports ``plugin_session`` and registers it, which runs
the checks against the targets and writes the report.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

__all__: list[str] = []

_INI_DEFAULTS = ("conform_engine", "conform_url", "conform_timeout")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conform", "conform: conformance of LLM inference engines")
    group.addoption("--conform-engine", help="engine of the live target (`conform run --help` lists them)")
    group.addoption("--conform-url", help="base URL of the live target")
    group.addoption(
        "--conform-stub",
        action="append",
        default=[],
        metavar="ENGINE",
        help="run against an embedded stub of ENGINE (repeatable; 'all' for every engine with a stub)",
    )
    group.addoption("--conform-model", help="model name to request")
    group.addoption("--conform-api-key-env", metavar="VAR", help="environment variable holding the API key")
    group.addoption("--conform-timeout", type=float, help="seconds bounding every request and stream (default 30)")
    group.addoption("--conform-insecure", action="store_true", help="do not verify TLS certificates")
    group.addoption("--conform-ca-bundle", metavar="PEM", help="trust these CAs instead of the system's")
    group.addoption("--conform-connect-timeout", type=float, metavar="S", help="TCP/TLS connect bound (default 5)")
    group.addoption(
        "--conform-idle-timeout", type=float, metavar="S", help="longest silence inside a stream (default: the total)"
    )
    group.addoption(
        "--conform-proxy",
        metavar="URL",
        help="send every request through this HTTP proxy (default: HTTP_PROXY/HTTPS_PROXY, minus NO_PROXY)",
    )
    group.addoption(
        "--conform-request-extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add a field to every generation request: KEY=VALUE (a string) or KEY:=JSON (repeatable)",
    )
    group.addoption(
        "--conform-engine-version",
        metavar="LABEL",
        help="declare the engine's version (recorded as declared): what reports compare builds by",
    )
    group.addoption("--conform-report", metavar="PATH", help="write the JSON compliance report here")
    group.addoption(
        "--conform-progress",
        nargs="?",
        const="normal",
        choices=("normal", "verbose"),
        help="progress on stderr: a live line on a terminal, failed checks and every tenth of the run in a log; "
        "verbose: a line per finished check",
    )
    group.addoption(
        "--conform-capabilities",
        metavar="LIST",
        help="comma-separated capabilities to declare supported, whatever probing infers",
    )
    group.addoption(
        "--conform-exempt",
        metavar="LIST",
        help="comma-separated capabilities to declare unsupported (their checks are skipped)",
    )
    group.addoption("--conform-vendor", metavar="FILE", help="JSON file of implementation metadata for the report")
    group.addoption(
        "--conform-transcripts",
        metavar="DIR",
        help="keep a redacted NDJSON transcript of every request and received frame, one file per test",
    )
    group.addoption("--conform-checks", metavar="ID[,ID...]", help="run only the scenarios of these check ids")
    group.addoption("--conform-exclude-checks", metavar="ID[,ID...]", help="leave out the scenarios of these check ids")
    group.addoption("--conform-reproduce", help=argparse.SUPPRESS)
    group.addoption("--conform-no-preflight", action="store_true", help=argparse.SUPPRESS)  # conform run did it
    for name in _INI_DEFAULTS:
        parser.addini(name, f"default for --{name.replace('_', '-')}")


def _asked(config: pytest.Config) -> bool:
    """Whether any conform option (or ini default) was given: only then does the plugin do anything."""
    for key, value in vars(config.option).items():
        if key.startswith("conform_") and value not in (None, False, []):
            return True
    return any(config.getini(name) for name in _INI_DEFAULTS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conform_check(id): the check id this scenario reports under")
    config.addinivalue_line("markers", "conform_needs(*capabilities): capabilities the target must have")
    config.addinivalue_line("markers", "conform_level(level): core (default) or extended")
    if _asked(config):
        from . import plugin_session

        config.pluginmanager.register(plugin_session, "conform-session")
        plugin_session.activate(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need a conform target, collected with none given, are a usage error: a run of skips would
    look green."""
    if _asked(config):
        return
    needing = [item for item in items if "conform_target" in getattr(item, "fixturenames", ())]
    if needing:
        pytest.exit(  # a UsageError raised while collecting is reported as pytest's own internal error
            f"conform: {len(needing)} collected tests need a conform target (e.g. {needing[0].nodeid}): pass "
            "--conform-engine E --conform-url URL, or --conform-stub E",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


@pytest.fixture
def conform_target(request: pytest.FixtureRequest) -> Any:
    """The target of this test (parametrized over every target of the run)."""
    return request.param
