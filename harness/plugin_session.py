"""The conform pytest plugin's working half, registered by ``pytest_plugin`` when a conform option is given.

Given a target (``--conform-engine E
--conform-url URL``) or embedded stubs (``--conform-stub E``), it:

- parametrizes every test that uses ``conform_target`` with the targets;
- turns Gherkin tags into markers: ``@check:<id>``, ``@needs_<capability>``,
  ``@stub_only`` (needs scripted faults), ``@core`` / ``@extended``;
- skips, at setup, a test whose target lacks a needed capability, saying which;
- collects one result per test and target into the report model, carried on
  ``TestReport.user_properties`` so that it works under pytest-xdist;
- writes the JSON report (``--conform-report``) atomically at the end.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conform.adapters import Capability, HttpAdapter, Redactor, WorkerError, create_adapter, engine_name, engine_names
from conform.reports import (
    CapabilitySummary,
    CheckResult,
    Implementation,
    Report,
    TargetInfo,
    utc_now,
    write_atomic,
    write_json_report,
)
from conform.reports.provenance import versioned
from conform.stubs import StubServer, stub_engines

from .checks import CheckFailure
from .console import Console
from .interrupt import StopRequest
from .preflight import PreflightError, preflight
from .probe import TargetProfile, parse_capabilities, probe
from .progress import Progress
from .runtime import ScenarioRuntime, adapter_options, transcript_name
from .targets import Target, TargetError, check_url, proxy_config, request_extra
from .timing import StreamTiming, exempt_startup_objects, summarize_latency
from .vendor import load_vendor

__all__ = ["SCENARIO_KEY", "ScenarioInfo"]


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    feature_path: Path
    scenario: str


SCENARIO_KEY = pytest.StashKey[ScenarioInfo]()
_STATE_KEY = pytest.StashKey["_PluginState"]()

_PROP = "conform"
"""Key of the one user_properties entry carrying a test's result fields."""
_TIMING_PROP = "conform_timing"
"""Key of the user_properties entry carrying the latency of a test's streams (set at teardown)."""


@dataclass
class _PluginState:
    targets: list[Target]
    report_path: Path | None
    reproduce: str
    started_at: str
    profiles: dict[str, TargetProfile] = field(default_factory=dict)
    results: dict[str, CheckResult] = field(default_factory=dict)
    timings: dict[str, list[StreamTiming]] = field(default_factory=dict)
    """Latency of every completed stream, by target label."""
    order: list[str] = field(default_factory=list)
    interrupted: bool = False
    stop_file: Path | None = None
    """Where the controller asks xdist workers to stop (see `_stop_on_signal`)."""
    declared: frozenset[Capability] = frozenset()
    exempt: frozenset[Capability] = frozenset()
    implementation: Implementation = field(default_factory=Implementation)

    def profile(self, target: Target) -> TargetProfile:
        if target.label not in self.profiles:
            inferred = asyncio.run(_probe_target(target))
            self.profiles[target.label] = inferred.declare(self.declared, self.exempt)
        return self.profiles[target.label]


async def _probe_target(target: Target) -> TargetProfile:
    stub: StubServer | None = None
    url = target.url
    if url is None:
        stub = await StubServer(target.engine).start()
        url = stub.url
    adapter: HttpAdapter = create_adapter(target.engine, url, adapter_options(target))
    try:
        return await probe(adapter, is_stub=target.is_stub)
    finally:
        await adapter.aclose()
        if stub is not None:
            await stub.close()


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(f"--conform-{name.replace('_', '-')}")
    if value in (None, []):
        ini = config.getini(f"conform_{name}") if name in ("engine", "url", "timeout") else None
        return ini or None
    return value


def _targets(config: pytest.Config) -> list[Target]:
    try:
        return _build_targets(config)
    except (ValueError, ValidationError, TargetError) as error:
        first = error.errors()[0] if isinstance(error, ValidationError) else None
        message = f"--conform-{first['loc'][0]}: {first['msg']}" if first else str(error)
        raise pytest.UsageError(message) from None


def _build_targets(config: pytest.Config) -> list[Target]:
    engine, url = _option(config, "engine"), _option(config, "url")
    stubs: list[str] = config.getoption("--conform-stub") or []
    timeout = float(_option(config, "timeout") or 30.0)
    common: dict[str, Any] = {
        "model": _option(config, "model"),
        "api_key_env": _option(config, "api_key_env"),
        "timeout": timeout,
        "insecure": bool(config.getoption("--conform-insecure")),
        "ca_bundle": config.getoption("--conform-ca-bundle"),
        "connect_timeout": config.getoption("--conform-connect-timeout") or 5.0,
        "idle_timeout": config.getoption("--conform-idle-timeout"),
        "proxy": proxy_config(config.getoption("--conform-proxy"), os.environ),
        "request_extra": request_extra(config.getoption("--conform-request-extra") or [], "--conform-request-extra"),
        "engine_version": config.getoption("--conform-engine-version"),
    }
    targets: list[Target] = []
    if engine or url:
        if not (engine and url):
            raise pytest.UsageError("--conform-engine and --conform-url go together")
        engine = engine_name(engine) or engine
        if engine not in engine_names():
            raise pytest.UsageError(f"--conform-engine: {engine!r} is not one of {', '.join(engine_names())}")
        check_url(url, engine, "--conform-url")
        targets.append(Target(engine=engine, url=url, **common))
    names = list(stub_engines()) if "all" in stubs else stubs
    for name in names:
        if name not in stub_engines():
            raise pytest.UsageError(f"--conform-stub: no stub for {name!r} (stubs: {', '.join(stub_engines())})")
        targets.append(Target(engine=name, **common))
    return targets


_NO_TARGET = "no conform target: pass --conform-engine E --conform-url URL, or --conform-stub E"


def _preflight(targets: list[Target]) -> None:
    """A live target that cannot be reached, or is not the engine it is said to be, stops the session before
    any test, as `conform run` does (exit 2): no verdict on an engine that was never really reached."""
    for target in targets:
        if target.url is None:
            continue
        try:
            asyncio.run(preflight(target))
        except PreflightError as error:
            pytest.exit(f"conform: error: {error}", returncode=2)


def activate(config: pytest.Config) -> None:
    """Called by the plugin's entry module, which registers this module as a plugin, when a conform option
    was given: the markers, and the state of a run against its targets."""
    for name in ("core", "extended", "stub_only", *(f"needs_{c.value}" for c in Capability)):
        config.addinivalue_line("markers", f"{name}: conform Gherkin tag @{name}")
    targets = _targets(config)
    if not targets:
        raise pytest.UsageError(_NO_TARGET)
    if not hasattr(config, "workerinput") and not config.getoption("--conform-no-preflight"):
        _preflight(targets)
    report = _option(config, "report")
    try:
        declared = parse_capabilities(config.getoption("--conform-capabilities"), "--conform-capabilities")
        exempt = parse_capabilities(config.getoption("--conform-exempt"), "--conform-exempt")
        vendor = config.getoption("--conform-vendor")
        implementation = load_vendor(Path(vendor)) if vendor else Implementation()
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    state = _PluginState(
        targets=targets,
        report_path=Path(report) if report else None,
        reproduce=_reproduce_line(config),
        started_at=utc_now(),
        declared=declared,
        exempt=exempt,
        implementation=implementation,
    )
    config.stash[_STATE_KEY] = state
    config.pluginmanager.register(_RunRecorder(config, state), "conform-run-recorder")
    _stop_on_signal(config, state)


_STOP_FILE = "conform_stop_file"
"""workerinput key: the file whose existence asks an xdist worker to stop after its running check."""


def _stop_on_signal(config: pytest.Config, state: _PluginState) -> None:
    """SIGINT or SIGTERM finishes the running check, stops, and writes a report marked interrupted.

    A signal may reach the controller alone (a CI runner's SIGTERM to the process it started): the controller
    then asks its xdist workers to stop too, through a file they look for after each check.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        given = workerinput.get(_STOP_FILE)
        state.stop_file = Path(given) if given else None
    else:
        state.stop_file = Path(tempfile.mkdtemp(prefix="conform-stop-")) / "stop"
        config.pluginmanager.register(_StopFileForWorkers(state.stop_file), "conform-stop-file")

    def on_request() -> None:
        state.interrupted = True
        if state.stop_file is not None:
            state.stop_file.touch()

    StopRequest(on_request).install()


class _StopFileForWorkers:
    def __init__(self, path: Path) -> None:
        self._path = path

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:  # xdist's hook: what a worker is started with
        node.workerinput[_STOP_FILE] = str(self._path)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        shutil.rmtree(self._path.parent, ignore_errors=True)


def _state(config: pytest.Config) -> _PluginState | None:
    return config.stash.get(_STATE_KEY, None)


def pytest_report_header(config: pytest.Config) -> str | None:
    state = _state(config)
    if state is None:
        return None
    return "conform targets: " + ", ".join(f"{t.label} ({t.display_url})" for t in state.targets)


@pytest.hookimpl(tryfirst=True)
def pytest_bdd_apply_tag(tag: str, function: Any) -> bool | None:
    """Map conform's Gherkin tags to markers; other tags get pytest-bdd's default treatment."""
    if tag.startswith("check:"):
        pytest.mark.conform_check(tag.removeprefix("check:"))(function)
        return True
    if tag.startswith("needs_"):
        _needed_capability(tag)  # an unknown name fails at collection, not when a target lacks it
    elif tag == "stub_only":
        pytest.mark.conform_needs(Capability.SCRIPTED_FAULTS.value)(function)
    elif tag in ("core", "extended"):
        pytest.mark.conform_level(tag)(function)
    else:
        return None
    getattr(pytest.mark, tag)(function)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every scenario is marked with its feature name and its level, as reports name them, before `-m` selects
    (so ``-m core`` keeps the scenarios no tag calls extended); then --conform-checks and
    --conform-exclude-checks keep the scenarios of the check ids asked for."""
    _mark_feature_and_level(config, items)
    wanted = _id_set(config.getoption("--conform-checks"))
    unwanted = _id_set(config.getoption("--conform-exclude-checks"))
    if not wanted and not unwanted:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("conform_check")
        check_id = str(marker.args[0]) if marker else None
        example = _scenario_names(item)[2]
        ids = {check_id, f"{check_id}[{example}]" if example else check_id}  # the id, and the id of its variant
        chosen = (not wanted or bool(ids & wanted)) and not ids & unwanted
        (kept if chosen else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _mark_feature_and_level(config: pytest.Config, items: list[pytest.Item]) -> None:
    known = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for item in items:
        if "conform_target" not in getattr(item, "fixturenames", ()):
            continue
        for name, what in ((_scenario_names(item)[0], "feature"), (_level(item), "level")):
            if name not in known:
                config.addinivalue_line("markers", f"{name}: conform {what}")
                known.add(name)
            if item.get_closest_marker(name) is None:
                item.add_marker(name)


def _id_set(text: str | None) -> set[str]:
    return {i.strip() for i in (text or "").split(",") if i.strip()}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    state = _state(metafunc.config)
    if state is None or "conform_target" not in metafunc.fixturenames:
        return
    metafunc.parametrize("conform_target", state.targets, ids=[t.label for t in state.targets])


@pytest.fixture
def conform_profile(request: pytest.FixtureRequest, conform_target: Target) -> TargetProfile:
    """The target's capabilities and provenance; skips the test if it needs one the target lacks."""
    state = _state(request.config)
    assert state is not None, "conform_target is only parametrized when the plugin is active"
    profile = state.profile(conform_target)
    for capability in _needed(request.node):
        if capability not in profile.supported:
            if capability is Capability.SCRIPTED_FAULTS:
                pytest.skip("needs scripted faults: only an embedded stub can play them, the target is live")
            pytest.skip(f"target lacks capability {capability.value}")
    return profile


def _needed(node: pytest.Item) -> list[Capability]:
    """Capabilities a test needs: ``needs_<capability>`` marks (Gherkin tags, of scenarios and of Examples
    blocks alike) and ``conform_needs`` marks (``@stub_only``, and users' own tests)."""
    needed = [Capability(name) for marker in node.iter_markers("conform_needs") for name in marker.args]
    needed += [_needed_capability(m.name) for m in node.iter_markers() if m.name.startswith("needs_")]
    return needed


def _needed_capability(tag: str) -> Capability:
    name = tag.removeprefix("needs_")
    if name not in {c.value for c in Capability}:
        known = ", ".join(c.value for c in Capability)
        raise pytest.UsageError(f"tag @{tag}: {name!r} is not a capability ({known})")
    return Capability(name)


@pytest.fixture
def conform_runtime(
    request: pytest.FixtureRequest, conform_target: Target, conform_profile: TargetProfile
) -> Iterator[ScenarioRuntime]:
    """The scenario's event loop, stub (for stub targets) and adapter."""
    folder = request.config.getoption("--conform-transcripts")
    keep = bool(folder) or _allure_on(request.config)
    runtime = ScenarioRuntime(conform_target, conform_profile, transcript=keep)
    try:
        yield runtime
    finally:
        runtime.close()
        if folder and runtime.transcript is not None and len(runtime.transcript):
            name = transcript_name(_identity(request.node, conform_target)["id"], conform_target.label)
            write_atomic(Path(folder) / name, runtime.transcript.to_ndjson())
        if runtime.timings:
            streams = [t.to_json() for t in runtime.timings]
            request.node.user_properties.append((_TIMING_PROP, {"target": conform_target.label, "streams": streams}))


@pytest.fixture
def conform_adapter(conform_runtime: ScenarioRuntime) -> HttpAdapter:
    """The adapter for this test's target; call it through ``conform_runtime.run(...)``."""
    return conform_runtime.adapter


def pytest_bdd_before_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    request.node.stash[SCENARIO_KEY] = ScenarioInfo(Path(feature.filename), scenario.name)


_STEP_KEY = pytest.StashKey[Any]()


def pytest_bdd_before_step(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any) -> None:
    """Each Gherkin step is an allure step (with its keyword), when allure reports."""
    if _allure_on(request.config):
        import allure

        context = allure.step(f"{step.keyword} {step.name}")
        context.__enter__()  # type: ignore[no-untyped-call]
        request.node.stash[_STEP_KEY] = context


def pytest_bdd_after_step(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any) -> None:
    context = request.node.stash.get(_STEP_KEY, None)
    if context is not None:
        del request.node.stash[_STEP_KEY]
        context.__exit__(None, None, None)


def pytest_bdd_step_error(
    request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, exception: Exception
) -> None:
    context = request.node.stash.get(_STEP_KEY, None)
    if context is not None:
        del request.node.stash[_STEP_KEY]
        context.__exit__(type(exception), exception, exception.__traceback__)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Innermost wrapper (trylast): the report is made safe here, before JUnit, allure or xdist read it."""
    report = yield
    if _state(item.config) is None or "conform_target" not in getattr(item, "fixturenames", ()):
        return report
    target = _item_target(item)
    if target is None:
        return report
    _make_safe(report, call, target)
    if report.when == "call" and report.failed:
        _attach_transcript(item)
    fields = _identity(item, target)
    fields["detail"] = _detail(report, call)
    fields["status"] = _status(report, call)
    report.user_properties.append((_PROP, fields))
    return report


def _item_target(item: pytest.Item) -> Target | None:
    """The target a conform test runs against (its `conform_target` parameter), if it is one."""
    target: Target | None = getattr(getattr(item, "callspec", None), "params", {}).get("conform_target")
    return target


def _allure_target(item: pytest.Item) -> Target | None:
    """The target of a conform test while allure reports, else None."""
    target = _item_target(item)
    if target is None or _state(item.config) is None or not _allure_on(item.config):
        return None
    return target


def pytest_runtest_setup(item: pytest.Item) -> None:
    """In allure, a check is its feature and story (the scenario), with the target as readable parameters
    instead of the Target object's repr."""
    target = _allure_target(item)
    if target is None:
        return
    import allure

    identity = _identity(item, target)
    dynamic: Any = allure.dynamic  # allure's own functions carry no types
    dynamic.feature(identity["feature"])
    dynamic.story(identity["scenario"])
    dynamic.label("check_id", identity["id"])
    dynamic.parameter("conform_target", target.label, mode=allure.parameter_mode.HIDDEN)
    dynamic.parameter("target", target.label)
    dynamic.parameter("engine", target.engine)
    if target.url is not None:
        dynamic.parameter("url", target.display_url)


def pytest_runtest_call(item: pytest.Item) -> None:
    """The allure title, the check id: set here, since allure names the test after its function at setup."""
    target = _allure_target(item)
    if target is None:
        return
    import allure

    dynamic: Any = allure.dynamic
    dynamic.title(f"{_identity(item, target)['id']} ({target.label})")


def _allure_on(config: pytest.Config) -> bool:
    return bool(config.pluginmanager.hasplugin("allure_pytest") and config.getoption("--alluredir", None))


def _attach_transcript(item: pytest.Item) -> None:
    """A failed scenario carries its (redacted) transcript into allure: what the engine really sent."""
    runtime = getattr(item, "funcargs", {}).get("conform_runtime")
    transcript = getattr(runtime, "transcript", None)
    if transcript is None or not len(transcript) or not _allure_on(item.config):
        return
    import allure

    allure.attach(transcript.to_ndjson(), name="transcript.ndjson", attachment_type=allure.attachment_type.TEXT)


def _make_safe(report: pytest.TestReport, call: pytest.CallInfo[None], target: Target) -> None:
    """A finding about the engine is its one-line message, not our stack; and no text keeps the secret.

    Long tracebacks print the arguments of every frame (a parsed error body
    among them), so a check failure or an engine error is reported as its
    message alone, and anything else is redacted.
    """
    if report.passed or report.skipped:
        return
    secret = target.api_key()
    redact = Redactor([secret] if secret else [])
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, CheckFailure | WorkerError):
        report.longrepr = redact(f"{type(error).__name__}: {error}")
    elif report.longrepr is not None:
        report.longrepr = redact(str(report.longrepr))
    report.sections = [(title, redact(text)) for title, text in report.sections]


def _identity(item: pytest.Item, target: Target) -> dict[str, Any]:
    feature, scenario, example = _scenario_names(item)
    marker = item.get_closest_marker("conform_check")
    check_id = str(marker.args[0]) if marker else f"{feature}.{_slug(scenario)}"
    if example:
        check_id += f"[{example}]"
    return {
        "id": check_id,
        "feature": feature,
        "scenario": scenario,
        "engine": target.engine,
        "target": target.label,
        "level": _level(item),
    }


def _level(item: pytest.Item) -> str:
    """core, unless a tag says extended (the `conform_level` mark)."""
    marker = item.get_closest_marker("conform_level")
    return str(marker.args[0]) if marker else "core"


def _scenario_names(item: pytest.Item) -> tuple[str, str, str]:
    """(feature stem, scenario name, example id) from pytest-bdd, or the test's own names."""
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    template = scenario_wrapper_template_registry.get(getattr(item, "obj", None))  # type: ignore[arg-type]
    params = getattr(getattr(item, "callspec", None), "params", {})
    example = params.get("_pytest_bdd_example")
    example_id = "-".join(str(v) for v in example.values()) if isinstance(example, dict) else ""
    if template is not None:
        return Path(template.feature.filename).stem, template.name, example_id
    module = Path(str(item.path)).stem.removeprefix("test_")
    return module, getattr(item, "originalname", item.name), example_id


def _slug(text: str) -> str:
    return "_".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _status(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    if report.skipped:
        return "skipped"
    if report.passed:
        return "passed"
    if report.when == "call" and call.excinfo is not None and call.excinfo.errisinstance((AssertionError, WorkerError)):
        return "failed"  # a check that did not hold, or the engine failing a request a step made
    return "error"


def _detail(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str | None:
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return reason.removeprefix("Skipped: ")
    excinfo = call.excinfo
    if report.passed or excinfo is None:
        return None
    error = excinfo.value
    if isinstance(error, CheckFailure):
        return str(error)
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


class _RunRecorder:
    """Registered only when the plugin is active: turns test reports into results and writes the report."""

    def __init__(self, config: pytest.Config, state: _PluginState) -> None:
        self._config = config
        self._state = state
        # Under xdist only the controller reports progress: a worker would print each of its checks again.
        level = config.getoption("--conform-progress")
        wanted = level is not None and not hasattr(config, "workerinput")
        console = Console.of(sys.stderr, os.environ)
        self._progress = Progress(sys.stderr, verbose=level == "verbose", paint=console.paint) if wanted else None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Here, not in `conform run`: under xdist the checks stream in the workers, which collect.
        exempt_startup_objects()  # a collection pause in the middle of a stream would count as its latency
        if self._progress is not None:
            self._progress.total = len(session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under xdist the controller collects nothing itself: each worker reports what it collected."""
        if self._progress is not None:
            self._progress.total = len(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            for key, value in report.user_properties:
                if key == _TIMING_PROP and isinstance(value, dict):
                    timings = self._state.timings.setdefault(str(value["target"]), [])
                    timings.extend(StreamTiming.from_json(t) for t in value["streams"])
        fields = next((value for key, value in report.user_properties if key == _PROP), None)
        if not isinstance(fields, dict):
            return
        state = self._state
        existing = state.results.get(report.nodeid)
        duration = report.duration + (existing.duration_s if existing else 0.0)
        if existing is not None and fields["status"] == "passed":
            # A passing call or teardown neither undoes an earlier failure nor adds a result.
            state.results[report.nodeid] = existing.model_copy(update={"duration_s": duration})
        else:
            state.results[report.nodeid] = CheckResult(duration_s=duration, **fields)
            if report.nodeid not in state.order:
                state.order.append(report.nodeid)
        if self._progress is not None and (report.when == "call" or not report.passed):
            self._progress.finished(state.results[report.nodeid])

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        # `conform run` turns pytest's terminal off; a broken feature must still say why.
        if report.failed:
            print(
                f"conform: cannot collect {report.nodeid}: {report.longreprtext.strip().splitlines()[-1]}",
                file=sys.stderr,
                flush=True,
            )

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self._state.interrupted = True

    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        stop_file = self._state.stop_file
        if self._state.interrupted or (stop_file is not None and stop_file.exists()):
            self._state.interrupted = True
            item.session.shouldstop = "interrupted"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._progress is not None:
            self._progress.close()
        if self._state.report_path is None or hasattr(self._config, "workerinput"):
            return
        write_json_report(build_report(self._state), self._state.report_path)


def build_report(state: _PluginState) -> Report:
    # By feature, target and test id: the same layout whatever order xdist's workers finished in.
    def layout(nodeid: str) -> tuple[str, str, str]:
        result = state.results[nodeid]
        return result.feature, result.target or result.engine, nodeid

    results = [state.results[k] for k in sorted(state.order, key=layout)]
    targets = []
    for target in state.targets:
        profile = state.profiles.get(target.label) or state.profile(target)
        targets.append(
            TargetInfo(
                engine=target.engine,
                url=target.display_url,
                label=target.label,
                **versioned(profile.version.version, target.engine_version).model_dump(),
                model=profile.version.model,
                model_digest=profile.version.model_digest,
                latency=summarize_latency(state.timings.get(target.label, [])),
                request_extra=target.request_extra or None,
                capabilities=CapabilitySummary(
                    supported=sorted(c.value for c in profile.supported),
                    unsupported=sorted(c.value for c in profile.unsupported),
                    source=profile.source,
                    declared=sorted(c.value for c in state.declared),
                    exempt=sorted(c.value for c in state.exempt),
                ),
            )
        )
    return Report.assemble(
        started_at=state.started_at,
        reproduce=state.reproduce,
        targets=targets,
        results=results,
        interrupted=state.interrupted,
        insecure=any(t.insecure for t in state.targets),
        implementation=state.implementation,
    )


def _reproduce_line(config: pytest.Config) -> str:
    # Secrets never appear on a command line here, only the name of their environment variable.
    given = config.getoption("--conform-reproduce")
    return str(given) if given else shlex.join(["pytest", *config.invocation_params.args])
