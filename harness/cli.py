"""The `conform` command line: run | stub.

Bad input (unknown engine, bad URL, missing file, unreachable target) is one
line on stderr and exit 2, never a traceback. `run` drives pytest with the
conform plugin, so JUnit, allure and xdist come with it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conform.adapters import ProxyConfig, engine_name, engine_names
from conform.features import FEATURES_DIR
from conform.reports import (
    INSECURE_WARNING,
    STDOUT,
    KeyFileError,
    Report,
    ReportFileError,
    UnwritablePath,
    check_writable,
    content_digest,
    diff_reports,
    fingerprint,
    load_private_key,
    load_public_key,
    load_report,
    partial_reason,
    render_diff_markdown,
    render_markdown,
    report_kind,
    signature_problem,
    write_atomic,
    write_html_report,
    write_json_report,
    write_junit_report,
    write_markdown_report,
)
from conform.stubs import Script, ScriptError, StubServer, load_script, precise_event_loop, stub_engines
from conform.stubs.script import fault_kinds

from .catalogue import CheckEntry, check_catalogue, selectable_tags
from .console import QUIET, VERBOSE, Console
from .determinism import (
    BUILTIN,
    CorpusError,
    GoldenLine,
    SuiteOptions,
    TargetUnreachable,
    builtin_corpus,
    load_golden,
    run_suite,
)
from .interrupt import EXIT_INTERRUPTED, StopRequest
from .matrix import failure_lines, latency_lines, render_determinism, render_matrix, skipped_lines
from .preflight import PreflightError, preflight
from .probe import parse_capabilities
from .settings import Setting, SettingsError, apply_settings, find_pyproject
from .targets import Target, TargetError, check_url, mask_url_token, proxy_config, request_extra
from .timing import exempt_startup_objects
from .vendor import load_vendor

__all__ = ["STUB_WORKERS", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STUB_WORKERS = 4
"""Processes `conform run` spreads the embedded stubs' scenarios over (benchmarks/wall.py measures it)."""
_DEFAULT_SEED, _DEFAULT_MAX_TOKENS, _DEFAULT_REQUESTS = 1, 64, 8
_INI = Path(__file__).with_name("conform_pytest.ini")


class UsageError(Exception):
    """Bad input to conform itself: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations, as pytest: `--time` is no `--timeout`, so a configured value is never silently
        # overridden by a shortened word.
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


_REQUEST_EXTRA_HELP = (
    "add a field to the body of every generation request: KEY=VALUE for a string, KEY:=JSON for any JSON value "
    "(repeatable; an engine's own option, e.g. cache_prompt:=false, "
    "chat_template_kwargs:='{\"enable_thinking\": false}')"
)
_SIGN_KEY_HELP = (
    "sign the --report with this Ed25519 private key (PEM, e.g. from `openssl genpkey -algorithm ed25519`): "
    "`conform report --verify --public-key` then proves who published it"
)
_PROXY_HELP = (
    "send every request through this HTTP proxy (default: HTTP_PROXY / HTTPS_PROXY, bypassed for the hosts in NO_PROXY)"
)


def _version() -> str:
    try:
        return importlib.metadata.version("conform")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "(not installed)"


def _rendering_options(parser: argparse.ArgumentParser) -> None:
    """What run and determinism write besides the JSON report (see `_write_renderings`), and its signature."""
    parser.add_argument("--sign-key", type=Path, metavar="PEM", help=_SIGN_KEY_HELP)
    parser.add_argument("--junit", type=Path, metavar="PATH", help="write JUnit XML here")
    parser.add_argument("--html", type=Path, metavar="PATH", help="write a self-contained HTML report here")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write a Markdown report here")


def _verbosity_options(parser: argparse.ArgumentParser, progress: str) -> None:
    quietness = parser.add_mutually_exclusive_group()
    quietness.add_argument(
        "-q", "--quiet", dest="verbosity", action="store_const", const=QUIET, default=0, help=f"no {progress} lines"
    )
    quietness.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=VERBOSE,
        help=f"every {progress} line, every skipped check with its reason, the matrix and latency even when piped",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conform",
        description="Determinism and conformance test harness for LLM inference engines.",
        epilog="Run `conform COMMAND --help` for a command's options. Exit status: 0 conformant (or partial), "
        "1 a check failed, 2 a usage error (told in one line, before any work), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"conform {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="run the conformance features against a live target or the embedded stubs",
        description="Run the conformance features. Without --url, every engine's embedded stub is started "
        "in process and every feature runs against each; with --engine and --url, against that live target.",
        epilog="Exit status: 0 no check failed (the result is conformant, or partial where core checks were "
        "skipped); 1 a check failed or errored; 2 a usage error (a bad option, an output that cannot be "
        "written, an unreachable target), told in one line before any check runs; 130 interrupted (the report "
        "is written, marked interrupted).",
    )
    run.add_argument("--engine", help=f"engine of the live target: {', '.join(engine_names())}")
    run.add_argument("--url", help="base URL of the live target, e.g. http://127.0.0.1:8080")
    run.add_argument("--model", help="model name to put in requests")
    run.add_argument("--api-key-env", metavar="VAR", help="name of the environment variable holding the API key")
    run.add_argument("--features", type=Path, help="a .feature file or folder (default: the built-in features)")
    run.add_argument(
        "--tags",
        metavar="EXPR",
        help="select scenarios by feature name ("
        + ", ".join(sorted(p.stem for p in FEATURES_DIR.glob("*.feature")))
        + "), level (core, extended) or Gherkin tag (needs_CAPABILITY, stub_only), combined with and, or, not "
        "and parentheses, e.g. 'core and not cancel' (`conform list` shows each check's feature, level and needs)",
    )
    run.add_argument("--checks", metavar="ID[,ID...]", help="run only these check ids (`conform list` names them all)")
    run.add_argument("--exclude-checks", metavar="ID[,ID...]", help="leave out these check ids")
    run.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="bound on every request and stream (default 30)",
    )
    run.add_argument(
        "--connect-timeout", type=float, default=5.0, metavar="S", help="bound on each TCP/TLS connect (default 5)"
    )
    run.add_argument(
        "--idle-timeout",
        type=float,
        metavar="S",
        help="longest silence allowed inside a started stream (default: --timeout); a stall is decode_timeout",
    )
    run.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (reported loudly)")
    run.add_argument("--proxy", metavar="URL", help=_PROXY_HELP)
    run.add_argument("--request-extra", action="append", default=[], metavar="KEY=VALUE", help=_REQUEST_EXTRA_HELP)
    run.add_argument(
        "--engine-version",
        metavar="LABEL",
        help="declare the engine's version (e.g. b11434), recorded as declared: what `conform diff` compares builds "
        "by, where the engine reports none or a placeholder such as b0-unknown",
    )
    run.add_argument(
        "--ca-bundle", type=Path, metavar="PEM", help="trust the CAs in this PEM file (self-signed engines)"
    )
    run.add_argument(
        "--capabilities",
        metavar="LIST",
        help="comma-separated capabilities to declare supported, whatever probing infers (the report says so)",
    )
    run.add_argument(
        "--exempt", metavar="LIST", help="comma-separated capabilities to declare unsupported: their checks are skipped"
    )
    run.add_argument(
        "--vendor",
        type=Path,
        metavar="FILE",
        help="JSON implementation metadata for a published report: organization, project, version, url, contact",
    )
    run.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="write the JSON compliance report here (- for standard output; the matrix then goes to stderr)",
    )
    _rendering_options(run)
    run.add_argument("--alluredir", type=Path, metavar="DIR", help="write allure results into this folder")
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"run scenarios in N processes (pytest-xdist, work-stealing). Default: {STUB_WORKERS} against the "
        "embedded stubs (each scenario has its own; they mostly wait on scripted delays, so more processes than "
        "cores pay), 1 against a live target (parallel scenarios would share its slots and batches)",
    )
    run.add_argument(
        "--transcripts",
        type=Path,
        metavar="DIR",
        help="keep a redacted NDJSON transcript of every request and received frame, one file per scenario",
    )
    _verbosity_options(run, "per-check progress")
    run.add_argument(
        "-x",
        "--exitfirst",
        action="store_true",
        help="stop after the first check that fails (the report holds the checks run until then)",
    )
    run.set_defaults(handler=_run)

    det = commands.add_parser(
        "determinism",
        help="replay seeded requests across replicas and under load; name the first divergent token",
        description="Send every seeded request of the corpus to every replica, alone (solo) and while "
        "--concurrency other requests are in flight (load), and compare the token streams. Exit 0 when "
        "every stream is identical, 1 on any divergence (the first divergent token is named), 2 on bad input.",
    )
    det.add_argument("--engine", required=True, help=f"engine of the replicas: {', '.join(engine_names())}")
    det.add_argument("--url", action="append", required=True, help="a replica's base URL (repeat for each replica)")
    det.add_argument("--model", help="model name to put in requests")
    det.add_argument("--api-key-env", metavar="VAR", help="name of the environment variable holding the API key")
    det.add_argument("--corpus", type=Path, help="JSONL corpus of seeded requests (default: the built-in corpus)")
    det.add_argument(
        "--requests",
        type=int,
        metavar="N",
        help=f"requests taken from the built-in corpus (default {_DEFAULT_REQUESTS}; a --baseline replays its own)",
    )
    det.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help=f"selects the built-in requests (default {_DEFAULT_SEED}; a --baseline replays its own)",
    )
    det.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="K",
        help="other requests in flight under load, and identical ones at once with --repeat (default 4)",
    )
    det.add_argument(
        "--max-tokens",
        type=int,
        metavar="T",
        help=f"tokens per request unless the corpus says (default {_DEFAULT_MAX_TOKENS}; a --baseline replays its own)",
    )
    det.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="send each request N times alone, one after another, and (unless --no-load) as N identical requests "
        "--concurrency at a time: the unique-completions experiment, reported per request (how many distinct "
        "completions, how many requests gave each, where they first differ)",
    )
    det.add_argument("--no-load", action="store_true", help="solo only: skip the under-load and burst modes")
    det.add_argument("--no-prompt-cache", action="store_true", help="skip the prompt-cache-on comparison")
    det.add_argument(
        "--logprob-rtol",
        type=float,
        default=0.0,
        metavar="R",
        help="relative tolerance for logprobs (default 0: bitwise)",
    )
    det.add_argument("--record", type=Path, metavar="GOLDEN", help="write the observed streams as a golden JSONL file")
    det.add_argument("--baseline", type=Path, metavar="GOLDEN", help="compare against a golden file recorded earlier")
    det.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="bound on every request (default 30, as run)"
    )
    det.add_argument(
        "--connect-timeout", type=float, default=5.0, metavar="S", help="bound on each TCP/TLS connect (default 5)"
    )
    det.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (reported loudly)")
    det.add_argument(
        "--ca-bundle", type=Path, metavar="PEM", help="trust the CAs in this PEM file (self-signed engines)"
    )
    det.add_argument("--proxy", metavar="URL", help=_PROXY_HELP)
    det.add_argument("--request-extra", action="append", default=[], metavar="KEY=VALUE", help=_REQUEST_EXTRA_HELP)
    det.add_argument(
        "--engine-version",
        action="append",
        default=[],
        metavar="LABEL",
        help="declare the engines' version, recorded as declared (once for every replica, or once per --url in "
        "order); a golden file keeps it, so --baseline names both builds",
    )
    det.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="write the JSON report here (- for standard output; the summary then goes to stderr)",
    )
    _rendering_options(det)
    det.add_argument(
        "--transcripts",
        type=Path,
        metavar="DIR",
        help="keep a redacted NDJSON transcript of every request and received frame, one file per corpus request "
        "and replica",
    )
    _verbosity_options(det, "progress")
    det.add_argument(
        "-x", "--exitfirst", action="store_true", help="stop after the first request that diverges or fails"
    )
    det.set_defaults(handler=_determinism)

    report = commands.add_parser(
        "report",
        help="render a JSON report as HTML or Markdown",
        description="Validate a JSON report against the schema and render it. Without --html or --markdown, "
        "print the Markdown to stdout.",
    )
    report.add_argument("report", type=Path, metavar="REPORT.json")
    report.add_argument(
        "--verify",
        action="store_true",
        help="check that the report is unmodified: its embedded digest matches its content, and with "
        "--public-key that it was signed with that key's private half (exit 1 if not)",
    )
    report.add_argument(
        "--public-key",
        type=Path,
        metavar="PEM",
        help="with --verify: the publisher's Ed25519 public key (PEM, `openssl pkey -in key.pem -pubout`)",
    )
    report.add_argument("--html", type=Path, metavar="PATH", help="write a self-contained HTML report here")
    report.add_argument("--markdown", type=Path, metavar="PATH", help="write a Markdown report here")
    report.set_defaults(handler=_report)

    diff = commands.add_parser(
        "diff",
        help="compare two reports: regressed, fixed, new and gone checks; exit 1 on regression",
        description="Compare a baseline report with a candidate (e.g. before and after an engine upgrade). "
        "Exit 1 if any check regressed or a request that was identical now diverges.",
    )
    diff.add_argument("baseline", type=Path, metavar="BASELINE.json")
    diff.add_argument("candidate", type=Path, metavar="CANDIDATE.json")
    diff.add_argument(
        "--markdown", type=Path, metavar="PATH", help="also write the diff as Markdown (for a PR comment)"
    )
    diff.add_argument(
        "--allow-gone",
        action="store_true",
        help="a check that passed in the baseline and is missing from the candidate is no regression (it was "
        "dropped on purpose); without this it is one",
    )
    diff.set_defaults(handler=_diff)

    listing = commands.add_parser(
        "list",
        help="list every check id with its feature, level and needed capabilities",
        description="List every check id of the features: its feature, level (core or extended), the capabilities "
        "a target needs for it, and what must hold. Generated from the .feature files.",
    )
    listing.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json")
    listing.add_argument("--features", type=Path, help="a .feature file or folder (default: the built-in features)")
    listing.set_defaults(handler=_list)

    stub = commands.add_parser(
        "stub",
        help="serve a stub engine until interrupted",
        description="Serve engine E's wire protocol. With --port 0 a free port is chosen; the first stdout "
        "line is always the URL.",
        epilog='Fault kinds a --script can play (its `faults` list, each {"kind": …}): '
        + ", ".join(fault_kinds())
        + ". Each is described in conform/stubs/script.py.",
    )
    stub.add_argument("engine", metavar="E", help=f"engine to imitate: {', '.join(stub_engines())}")
    stub.add_argument("--host", default="127.0.0.1")
    stub.add_argument("--port", type=int, default=0)
    stub.add_argument("--script", type=Path, help="JSON script of delays, framing and faults")
    stub.add_argument(
        "--token-delay-ms",
        type=float,
        metavar="MS",
        help="pause before each token (overrides the script's token_delay_ms), e.g. for a paced echo engine",
    )
    stub.add_argument("--seed", type=int, default=0, help="seed for requests that carry none")
    stub.add_argument("--model", default="stub-model", help="model name the stub reports")
    stub.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve HTTPS with this certificate (and --tls-key)")
    stub.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's private key")
    stub.add_argument(
        "--timeline",
        type=Path,
        metavar="FILE",
        help="on stop, write when each token frame was written (JSON, monotonic clock): the ground truth to "
        "check a client's latency figures against",
    )
    stub.set_defaults(handler=_stub)
    return parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers by name."""
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not words:  # bare `conform`: what it can do, not an error message
        parser.print_help()
        return EXIT_USAGE
    commands = _commands(parser)
    settings: list[Setting] = []
    if words[0] in commands:
        try:
            settings = apply_settings(commands, words[0], words[1:], os.environ, find_pyproject(Path.cwd()))
        except SettingsError as error:
            print(f"conform: error: {error}", file=sys.stderr)
            return EXIT_USAGE
    args = parser.parse_args(words)
    # Until a run installs its own handler (finish the running check, then report), a CI cancel's SIGTERM
    # ends conform as Ctrl-C does: one line, exit 130.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # The report's `reproduce`: secrets never reach the command line, only their variable's name.
    # Configured values (CONFORM_*, pyproject.toml) are written out: the line reproduces the run anywhere.
    effective = [*words, *(word for setting in settings for word in setting.words())]
    args.reproduce = mask_url_token(shlex.join(["conform", *effective]))
    try:
        code: int = args.handler(args)
    except (
        UsageError,
        TargetError,
        ScriptError,
        ReportFileError,
        UnwritablePath,
        PreflightError,
        KeyFileError,
    ) as error:
        print(f"conform: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("conform: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `conform list | head`: the reader has gone, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


# -- run ---------------------------------------------------------------------------------------------


def _target_from(args: argparse.Namespace) -> Target | None:
    if args.engine is None and args.url is None:
        if args.api_key_env or args.model or args.engine_version:
            raise UsageError("--model, --api-key-env and --engine-version need a live target (--engine and --url)")
        return None
    if args.engine is None or args.url is None:
        raise UsageError("--engine and --url go together (omit both to run against the embedded stubs)")
    args.engine = _require_engine(args.engine)
    check_url(args.url, args.engine)
    _check_connection_options(args)
    target = Target(
        engine=args.engine,
        url=args.url,
        model=args.model,
        api_key_env=args.api_key_env,
        timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        idle_timeout=args.idle_timeout,
        insecure=args.insecure,
        ca_bundle=str(args.ca_bundle) if args.ca_bundle else None,
        proxy=_proxy(args),
        request_extra=_request_extra(args),
        engine_version=_label(args.engine_version, "--engine-version"),
    )
    target.api_key()  # a missing secret is a usage error now, not forty failed checks later
    return target


def _check_connection_options(args: argparse.Namespace) -> None:
    """Timeouts and TLS options, alike on run and determinism."""
    for name in ("timeout", "connect_timeout", "idle_timeout"):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value:g}")
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        raise UsageError(f"--ca-bundle: {args.ca_bundle} is not a file")
    if args.ca_bundle is not None and args.insecure:
        raise UsageError("--ca-bundle and --insecure exclude each other")


def _label(value: str | None, option: str) -> str | None:
    if value is not None and not value.strip():
        raise UsageError(f"{option}: a label cannot be empty")
    return value.strip() if value else None


def _engine_versions(labels: list[str], replicas: int) -> tuple[str, ...]:
    """--engine-version on determinism: none, one for every replica, or one per --url."""
    if len(labels) not in (0, 1, replicas):
        raise UsageError(
            f"--engine-version: given {len(labels)} times for {replicas} --url; give it once for every replica, "
            "or once per --url in the same order"
        )
    return tuple(str(_label(label, "--engine-version")) for label in labels)


def _request_extra(args: argparse.Namespace) -> dict[str, Any]:
    try:
        return request_extra(args.request_extra)
    except TargetError as error:
        raise UsageError(str(error)) from None


def _proxy(args: argparse.Namespace) -> ProxyConfig:
    """--proxy, else the environment's proxy variables (read here, never by the adapters)."""
    try:
        return proxy_config(args.proxy, os.environ)
    except TargetError as error:
        raise UsageError(str(error)) from None


def _require_engine(engine: str) -> str:
    """The engine's own name for what the user wrote (``llama.cpp`` is ``llamacpp``); exit 2 if none."""
    name = engine_name(engine)
    if name is None:
        raise UsageError(f"unknown engine {engine!r} (known: {', '.join(engine_names())})")
    return name


def _collectable(features: Path, scratch: Path) -> Path:
    """What pytest collects for --features: a folder as is; a .feature file through its binding module."""
    if not features.exists():
        raise UsageError(f"--features: {features} does not exist")
    if features.is_dir():
        return features
    if features.suffix != ".feature":
        raise UsageError(f"--features: {features} is neither a folder nor a .feature file")
    resolved = features.resolve()
    builtin = FEATURES_DIR / f"test_{resolved.stem}.py"
    if resolved.parent == FEATURES_DIR and builtin.exists():
        return builtin
    binding = scratch / f"test_{resolved.stem}.py"
    binding.write_text(f"from pytest_bdd import scenarios\n\nscenarios({str(resolved)!r})\n", encoding="utf-8")
    return binding


def _pytest_args(args: argparse.Namespace, target: Target | None, report_path: Path, scratch: Path) -> list[str]:
    features = _collectable(args.features or FEATURES_DIR, scratch)
    pytest_args = [str(features), "-c", str(_INI), "--rootdir", str(FEATURES_DIR), "-p", "no:terminal"]
    if FEATURES_DIR not in (features.resolve(), *features.resolve().parents):
        pytest_args += ["-p", "conform.features.steps.all"]
    if target is None:
        pytest_args += ["--conform-stub", "all", "--conform-timeout", str(args.timeout)]
    else:
        pytest_args += ["--conform-engine", target.engine, "--conform-url", target.url or ""]
        pytest_args.append("--conform-no-preflight")  # done above, before any work
        pytest_args += ["--conform-timeout", str(target.timeout)]
        if target.model:
            pytest_args += ["--conform-model", target.model]
        if target.api_key_env:
            pytest_args += ["--conform-api-key-env", target.api_key_env]
        if target.insecure:
            pytest_args.append("--conform-insecure")
        if args.proxy:
            pytest_args += ["--conform-proxy", args.proxy]
        if target.engine_version:
            pytest_args += ["--conform-engine-version", target.engine_version]
        if target.ca_bundle:
            pytest_args += ["--conform-ca-bundle", target.ca_bundle]
        pytest_args += ["--conform-connect-timeout", str(target.connect_timeout)]
        if target.idle_timeout:
            pytest_args += ["--conform-idle-timeout", str(target.idle_timeout)]
    _request_extra(args)  # a malformed item is the user's mistake: exit 2 before any work, stubs or not
    for item in args.request_extra:
        pytest_args += ["--conform-request-extra", item]
    pytest_args += ["--conform-report", str(report_path), "--conform-reproduce", args.reproduce]
    for option in ("capabilities", "exempt", "vendor", "transcripts", "checks", "exclude_checks"):
        value = getattr(args, option)
        if value is not None:
            pytest_args += [f"--conform-{option.replace('_', '-')}", str(value)]
    if args.verbosity > QUIET:
        pytest_args += ["--conform-progress", "verbose" if args.verbosity >= VERBOSE else "normal"]
    if args.exitfirst:
        pytest_args.append("--exitfirst")
    if args.tags:
        pytest_args += ["-m", args.tags]
    workers = args.workers if args.workers is not None else (1 if target is not None else STUB_WORKERS)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if workers > 1:
        # Work stealing: a process that ran out takes scenarios from one that has many left, so that the
        # slowest feature's scenarios do not all wait on one process.
        pytest_args += ["-n", str(workers), "--dist", "worksteal"]
    if args.alluredir:
        pytest_args += ["--alluredir", str(args.alluredir)]
    return pytest_args


def _catalogue(features: Path | None) -> list[CheckEntry]:
    path = features or FEATURES_DIR
    if not path.exists():
        raise UsageError(f"--features: {path} does not exist")
    return check_catalogue(path)


def _list(args: argparse.Namespace) -> int:
    entries = _catalogue(args.features)
    if args.format == "json":
        print(json.dumps([entry.model_dump(mode="json") for entry in entries], indent=2))
        return 0
    width = max((len(e.id) for e in entries), default=0) + 4
    for e in entries:
        variants = f" [{e.variants} variants: {', '.join(e.variant_ids)}]" if 1 < e.variants <= 4 else ""
        variants = variants or (f" [{e.variants} variants]" if e.variants else "")
        needs = f" (needs {', '.join(e.needs)})" if e.needs else ""
        print(
            f"{e.id + ('[...]' if e.variants else ''):<{width}}{e.feature}, {e.level}{needs}: {e.description}{variants}"
        )
    return 0


def _check_ids(option: str, given: str | None, known: list[CheckEntry]) -> list[str]:
    """The ids of a --checks or --exclude-checks list; an unknown one is exit 2 with the valid ones."""
    ids = [i.strip() for i in (given or "").split(",") if i.strip()]
    valid = [e.id for e in known]
    variants = {result_id for e in known for result_id in e.result_ids}
    unknown = [i for i in ids if i not in valid and i not in variants]
    if unknown:
        raise UsageError(
            f"{option}: unknown check id {unknown[0]!r} (valid: {', '.join(valid)}; a variant as in results, "
            "e.g. tools.call[stream])"
        )
    return ids


def _check_tags(expression: str | None, known: list[CheckEntry]) -> None:
    """Every name in a --tags expression is a feature, a level or a Gherkin tag of the features; exit 2 if not."""
    if expression is None:
        return
    valid = selectable_tags(known)
    names = [word for word in re.findall(r"[^\s()]+", expression) if word not in ("and", "or", "not")]
    unknown = [name for name in names if name not in valid]
    if not names:
        raise UsageError(f"--tags: no tag in {expression!r} (valid: {', '.join(valid)})")
    if unknown:
        raise UsageError(f"--tags: {unknown[0]!r} names no feature, level or tag (valid: {', '.join(valid)})")


_UNDEFINED_STEP = "StepDefinitionNotFoundError: "

_MOST = {"requests": 100_000, "concurrency": 256, "max_tokens": 32_768, "repeat": 10_000}
"""Bounds of the determinism suite's numbers: past them a run is a typo (100000 for 100), not a plan."""


def _outputs(args: argparse.Namespace, files: Sequence[str], folders: Sequence[str] = ()) -> None:
    """Every output the user asked for can be written: their mistake is told before any work."""
    for name in (*files, *folders):
        path = getattr(args, name)
        if path is not None:
            check_writable(path, "--" + name.replace("_", "-"), folder=name in folders)


def _sign_key(args: argparse.Namespace) -> Ed25519PrivateKey | None:
    """The key to sign the report with, loaded before any work: a bad key file is the user's mistake."""
    if args.sign_key is None:
        return None
    if args.report is None:
        raise UsageError("--sign-key signs the JSON report: give --report PATH too")
    return load_private_key(args.sign_key)


def _write_renderings(args: argparse.Namespace, report: Report) -> None:
    """--html, --markdown and --junit of a finished report, alike for every command that makes one."""
    if args.html:
        write_html_report(report, args.html)
    if args.markdown:
        write_markdown_report(report, args.markdown)
    if args.junit:
        write_junit_report(report, args.junit)


def _run(args: argparse.Namespace) -> int:
    import pytest

    _outputs(args, ("report", "html", "markdown", "junit"), ("alluredir", "transcripts"))
    sign_key = _sign_key(args)
    if STDOUT in (args.html, args.markdown, args.junit):
        raise UsageError("only --report can be - (standard output)")
    out = sys.stderr if args.report == STDOUT else sys.stdout  # with the JSON on stdout, the rest goes aside
    catalogue = _catalogue(args.features)
    args.checks = ",".join(_check_ids("--checks", args.checks, catalogue)) or None
    args.exclude_checks = ",".join(_check_ids("--exclude-checks", args.exclude_checks, catalogue)) or None
    _check_tags(args.tags, catalogue)
    target = _target_from(args)
    try:
        parse_capabilities(args.capabilities, "--capabilities")
        parse_capabilities(args.exempt, "--exempt")
        if args.vendor is not None:
            load_vendor(args.vendor)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if target is not None:
        if target.insecure:
            print(f"conform: WARNING: {INSECURE_WARNING}", file=sys.stderr, flush=True)
        asyncio.run(preflight(target))
    with tempfile.TemporaryDirectory(prefix="conform-") as scratch:
        # Written by the plugin in the scratch folder, then here where the user asked: a device or a pipe
        # (/dev/stdout, -) cannot be read back, and a report file appears whole or not at all.
        report_path = Path(scratch) / "report.json"
        pytest_args = _pytest_args(args, target, report_path, Path(scratch))
        where = target.display_url if target else "embedded stubs: " + ", ".join(stub_engines())
        print(f"conform run — {where}", file=sys.stderr, flush=True)
        started = time.monotonic()
        code = pytest.main(pytest_args)
        elapsed = time.monotonic() - started
        if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
            raise UsageError("pytest could not run the features (see the message above)")
        if code == pytest.ExitCode.NO_TESTS_COLLECTED:
            raise UsageError("no scenario matched (check --features, --tags, --checks and --exclude-checks)")
        if not report_path.exists():
            raise UsageError("the run produced no report (interrupted before any check finished?)")
        report = Report.model_validate(json.loads(report_path.read_text(encoding="utf-8")))
    if args.report is not None:
        write_json_report(report, args.report, sign_key)
    undefined = next((r for r in report.results if (r.detail or "").startswith(_UNDEFINED_STEP)), None)
    if undefined is not None and undefined.detail is not None:
        # The user's own feature file, not the engine: no verdict on the engine from a scenario that never ran.
        raise UsageError(
            f"--features: a step has no definition (a typo?): {undefined.detail.removeprefix(_UNDEFINED_STEP)}"
        )
    _write_renderings(args, report)
    console = Console.of(out, os.environ, args.verbosity)
    _print_outcome(report, console, elapsed)
    if args.report and args.report != STDOUT:
        console.print(f"report: {args.report}")
    if code == pytest.ExitCode.INTERRUPTED or report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if report.summary.failed == 0 and report.summary.errors == 0 else EXIT_FAILED


def _print_outcome(report: Report, console: Console, elapsed: float) -> None:
    """On a terminal (or with -v) the matrix, wrapped to the terminal; piped, a line per failed check. Then
    the skipped checks with -v, and the result, with why it is partial."""
    verbose = console.verbosity >= VERBOSE
    if console.shows_all:
        width = shutil.get_terminal_size((80, 24)).columns if console.interactive else 80
        console.print(render_matrix(report, width, console.paint))
        if verbose:
            console.print("\n".join(latency_lines(report)))
        lines = failure_lines(report, console.paint)
        console.print("\n".join(["", *lines]) if lines else "")
    else:
        for line in failure_lines(report, console.paint):
            console.print(line)
    if verbose:
        for line in skipped_lines(report, console.paint):
            console.print(line)
    s = report.summary
    verdict = console.paint(report.result, {"conformant": "passed", "partial": "skipped"}.get(report.result, "failed"))
    console.print(
        f"result: {verdict} — {s.passed} passed, {s.failed} failed, {s.skipped} skipped, {s.errors} errors "
        f"in {elapsed:.1f} s" + (" (INTERRUPTED: not every check ran)" if report.interrupted else "")
    )
    reason = partial_reason(report, "" if verbose else " (-v lists them)")
    if reason is not None:
        console.print(reason)


# -- determinism ---------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))


def _read_baseline(args: argparse.Namespace) -> list[GoldenLine]:
    """The golden file, read once, before any work; a --seed, --max-tokens or --requests that would ask for other
    requests than the ones it replays is told."""
    try:
        golden = load_golden(args.baseline)
    except CorpusError as error:
        raise UsageError(str(error)) from None
    if not golden:
        raise UsageError(f"--baseline {args.baseline}: the golden file has no requests")
    recorded = [line.request for line in golden]
    if args.seed is not None and builtin_corpus(len(recorded), args.seed) != recorded:
        _warn(
            f"--seed {args.seed} does not select the golden file's requests (recorded with another --seed or "
            f"a corpus of its own): {args.baseline}'s {len(recorded)} requests are replayed as recorded"
        )
    budgets = sorted({r.max_tokens for r in recorded if r.max_tokens is not None})
    if args.max_tokens is not None and budgets != [args.max_tokens]:
        _warn(
            f"--max-tokens {args.max_tokens} differs from the golden file's "
            f"({', '.join(map(str, budgets))}): its requests are replayed with the budget they were recorded with"
        )
    if args.requests is not None and args.requests != len(recorded):
        _warn(f"--requests {args.requests} does not apply: {args.baseline} has {len(recorded)} requests")
    return golden


def _warn(message: str) -> None:
    print(f"conform: warning: {message}", file=sys.stderr, flush=True)


def _determinism(args: argparse.Namespace) -> int:
    _outputs(args, ("report", "record", "html", "markdown", "junit"), ("transcripts",))
    sign_key = _sign_key(args)
    if STDOUT in (args.record, args.html, args.markdown, args.junit):
        raise UsageError("only --report can be - (standard output)")
    if args.record is not None and args.baseline is not None and _same_file(args.record, args.baseline):
        raise UsageError(
            f"--record {args.record} is the --baseline: recording would replace the golden file being compared "
            "against; record to another path"
        )
    args.engine = _require_engine(args.engine)
    for url in args.url:
        check_url(url, args.engine)
    for name in ("requests", "concurrency", "max_tokens", "repeat"):
        value, most = getattr(args, name), _MOST[name]
        if value is not None and not 1 <= value <= most:
            raise UsageError(f"--{name.replace('_', '-')} must be from 1 to {most:,}, got {value:,}")
    if args.logprob_rtol < 0:
        raise UsageError(f"--logprob-rtol must be >= 0, got {args.logprob_rtol:g}")
    _check_connection_options(args)
    if args.corpus is not None and args.baseline is not None:
        raise UsageError("--corpus and --baseline exclude each other: a golden file carries its own requests")
    golden = _read_baseline(args) if args.baseline is not None else None
    options = SuiteOptions(
        engine=args.engine,
        urls=tuple(args.url),
        model=args.model,
        api_key_env=args.api_key_env,
        timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        insecure=args.insecure,
        ca_bundle=str(args.ca_bundle) if args.ca_bundle else None,
        transcripts=args.transcripts,
        proxy=_proxy(args),
        request_extra=_request_extra(args),
        engine_versions=_engine_versions(args.engine_version, len(args.url)),
        corpus=args.corpus,
        requests=_DEFAULT_REQUESTS if args.requests is None else args.requests,
        seed=_DEFAULT_SEED if args.seed is None else args.seed,
        concurrency=args.concurrency,
        max_tokens=_DEFAULT_MAX_TOKENS if args.max_tokens is None else args.max_tokens,
        repeat=args.repeat,
        record=args.record,
        baseline=args.baseline,
        logprob_rtol=args.logprob_rtol,
        prompt_cache=not args.no_prompt_cache,
        modes=("solo",) if args.no_load else ("solo", "load"),
        exitfirst=args.exitfirst,
        reproduce=args.reproduce,
    )
    if args.api_key_env:
        Target(engine=args.engine, url=args.url[0], api_key_env=args.api_key_env).api_key()

    def progress(line: str) -> None:
        if args.verbosity > QUIET:
            print(line, file=sys.stderr, flush=True)

    if args.insecure:
        print(f"conform: WARNING: {INSECURE_WARNING}", file=sys.stderr, flush=True)
    print(f"conform determinism — {len(args.url)} replica(s) of {args.engine}", file=sys.stderr, flush=True)
    if args.corpus is None and args.baseline is None and options.requests > len(BUILTIN):
        print(
            f"conform: note: the built-in corpus has {len(BUILTIN)} prompts; {options.requests:,} requests send them "
            "again with other seeds (--corpus FILE for prompts of your own)",
            file=sys.stderr,
            flush=True,
        )
    exempt_startup_objects()  # a collection pause in the middle of a stream would count as its latency
    stop = StopRequest(what="the current request")
    stop.install()
    try:
        report = asyncio.run(run_suite(options, progress, lambda: stop.requested, golden))
    except (TargetUnreachable, CorpusError) as error:
        raise UsageError(str(error)) from None
    out = sys.stderr if args.report == STDOUT else sys.stdout
    if args.report:
        write_json_report(report, args.report, sign_key)
    _write_renderings(args, report)
    console = Console.of(out, os.environ, args.verbosity)
    console.print(render_determinism(report, every_request=console.shows_all))
    if args.report and args.report != STDOUT:
        console.print(f"report: {args.report}")
    if report.interrupted:
        judged = len(report.determinism.requests) if report.determinism else 0
        by_signal = stop.requested
        why = "INTERRUPTED" if by_signal else "stopped at the first divergence (-x)"
        console.print(
            f"{why}: {judged} requests judged"
            + (f"; no golden file written ({args.record} would miss requests)" if args.record else "")
        )
        return EXIT_INTERRUPTED if by_signal else EXIT_FAILED
    if args.record:
        console.print(f"golden file: {args.record}")
    return EXIT_OK if report.result != "nonconformant" else EXIT_FAILED


# -- report and diff ----------------------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
    _outputs(args, ("html", "markdown"))
    if args.public_key is not None and not args.verify:
        raise UsageError("--public-key goes with --verify")
    if args.verify:
        return _verify(args.report, args.public_key)
    report = load_report(args.report)
    if args.html:
        write_html_report(report, args.html)
    if args.markdown:
        write_markdown_report(report, args.markdown)
    if not (args.html or args.markdown):
        print(render_markdown(report), end="")
    return EXIT_OK


def _verify(path: Path, public_key: Path | None) -> int:
    """Exit 0 when the embedded digest matches the content (and, given a public key, the signature is that
    key's); 1 when the report was modified, carries no digest, or is not signed with the key."""
    load_report(path)  # a file that is not a valid report is a usage error (exit 2)
    key = load_public_key(public_key) if public_key is not None else None
    document = json.loads(path.read_text(encoding="utf-8"))
    recorded = document.get("digest")
    if not recorded:
        print(f"{path}: NOT VERIFIED: the report carries no digest", file=sys.stderr)
        return EXIT_FAILED
    actual = content_digest(document)
    if actual != recorded:
        print(f"{path}: NOT VERIFIED: modified since it was written (digest {recorded}, content {actual})")
        return EXIT_FAILED
    signer = (document.get("signature") or {}).get("public_key_fingerprint")
    if key is not None:
        problem = signature_problem(document, key)
        if problem is not None:
            print(f"{path}: NOT VERIFIED: {problem}")
            return EXIT_FAILED
        print(f"{path}: verified: unmodified, signed with the private key of {fingerprint(key)}")
        return EXIT_OK
    print(f"{path}: digest matches ({recorded})")
    print(
        f"  signed with key {signer}; not checked: give --public-key to check who published it"
        if signer
        else "  the digest shows only that the content matches its digest: anyone who edits a report can "
        "recompute it; a signed report (--sign-key) checked with --public-key proves who published it"
    )
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    _outputs(args, ("markdown",))
    baseline, candidate = load_report(args.baseline), load_report(args.candidate)
    if report_kind(baseline) != report_kind(candidate):
        raise UsageError(
            f"{args.baseline} is a {report_kind(baseline)} report and {args.candidate} a {report_kind(candidate)} "
            "report: diff compares two reports of one kind"
        )
    changes = diff_reports(baseline, candidate, allow_gone=args.allow_gone)
    text = render_diff_markdown(changes)
    print(text, end="")
    if args.markdown:
        write_atomic(args.markdown, text)
    return EXIT_FAILED if changes.has_regression else EXIT_OK


# -- stub --------------------------------------------------------------------------------------------


def _stub(args: argparse.Namespace) -> int:
    args.engine = engine_name(args.engine) or args.engine
    if args.engine not in stub_engines():
        raise UsageError(f"no stub for engine {args.engine!r} (stubs: {', '.join(stub_engines())})")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    script = load_script(args.script) if args.script else Script()
    if args.token_delay_ms is not None:
        if args.token_delay_ms < 0:
            raise UsageError(f"--token-delay-ms must be >= 0, got {args.token_delay_ms:g}")
        script = script.model_copy(update={"token_delay_ms": args.token_delay_ms})
    if args.timeline is not None and args.timeline.is_dir():
        raise UsageError(f"--timeline {args.timeline} is a directory, not a file")
    # Scripted delays are kept to the microsecond, not rounded up to the millisecond as asyncio's own loop does.
    with asyncio.Runner(loop_factory=precise_event_loop) as runner:
        runner.run(_serve(args, script))
    return EXIT_OK


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"cannot load {args.tls_cert} / {args.tls_key}: {error}") from None
    return context


async def _serve(args: argparse.Namespace, script: Script) -> None:
    server = StubServer(
        args.engine,
        script,
        seed=args.seed,
        host=args.host,
        port=args.port,
        model=args.model,
        ssl_context=_tls_context(args),
        keep_timeline=args.timeline is not None,
    )
    try:
        await server.start()
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    exempt_startup_objects()  # a collection pause would hold back every stream's next token
    print(server.url, flush=True)
    print(f"conform stub {args.engine} serving on {server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
        if args.timeline is not None:
            _write_timeline(args.timeline, server)


def _write_timeline(path: Path, server: StubServer) -> None:
    try:
        write_atomic(path, server.timeline().model_dump_json(indent=1))
    except OSError as error:
        raise UsageError(f"cannot write the timeline {path}: {error.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
