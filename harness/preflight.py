"""Before any check runs: the user's own mistakes about a live target, told in one line with a hint.

A conformance verdict against an engine that was never really reached is wrong: a target that does not
answer, an engine that answers as another engine, a model the engine refuses. Each is a usage error
(exit 2), never a row of failed checks blamed on the engine.
"""

from __future__ import annotations

import dataclasses

from conform.adapters import ErrorKind, HttpAdapter, RetryPolicy, TaskRequest, WorkerError, create_adapter, engines

from .runtime import adapter_options
from .stream import collect
from .targets import Target

__all__ = ["PreflightError", "preflight"]


class PreflightError(ValueError):
    """The target is not what the command line says it is; the message is one line with a hint."""


async def preflight(target: Target) -> None:
    """Raise PreflightError when the target cannot be reached, answers as another engine, or refuses the
    model the user named."""
    adapter = create_adapter(target.engine, target.url or "", adapter_options(target))
    try:
        await _reachable(adapter, target)
        await _serves_the_model(adapter, target)  # first: an engine may ask for the model to say its version
        await _answers_as_its_engine(adapter, target)
    finally:
        await adapter.aclose()


async def _reachable(adapter: HttpAdapter, target: Target) -> None:
    """Any answer at all, even an error, is a target; no connection is not."""
    try:
        await adapter.http.request("GET", "/", ok_statuses=frozenset(range(100, 600)), retry=False)
    except WorkerError as error:
        if error.kind in (ErrorKind.UPSTREAM_UNAVAILABLE, ErrorKind.DEADLINE_UNMET) and error.status is None:
            raise PreflightError(f"cannot reach {target.display_url}: {error.message}") from None


async def _answers_as_its_engine(adapter: HttpAdapter, target: Target) -> None:
    """An engine whose own version endpoint is missing, at a server that answers as another engine, is the
    wrong --engine. Only then: an engine that merely lacks the endpoint is left to the checks."""
    try:
        await adapter.engine_version()
    except WorkerError as error:
        if error.kind is not ErrorKind.NOT_FOUND:
            return
        other = await _which_engine(target)
        if other is not None:
            raise PreflightError(
                f"--engine {target.engine}: {target.display_url} does not answer as {target.engine} "
                f"({error.message}), but it answers as {other}: try --engine {other}"
            ) from None


async def _which_engine(target: Target) -> str | None:
    """The first engine (in the catalogue's order) whose version endpoint this server answers."""
    for name in engines():
        if name == target.engine:
            continue
        options = dataclasses.replace(adapter_options(target), retry=RetryPolicy.none())
        candidate = create_adapter(name, target.url or "", options)
        try:
            version = await candidate.engine_version()
        except WorkerError:
            continue
        finally:
            await candidate.aclose()
        if version.version or version.model:
            return name
    return None


async def _serves_the_model(adapter: HttpAdapter, target: Target) -> None:
    """A --model the engine does not list, and refuses when asked for one token, is the user's typo."""
    if target.model is None:
        return
    try:
        listed = await adapter.list_models()
    except WorkerError:
        return  # no model list: the checks will say what happens
    if not listed or target.model in listed:
        return
    probe = await collect(adapter, TaskRequest(prompt="Hi", max_tokens=1, model=target.model))
    if probe.error is not None and probe.error.kind in (ErrorKind.NOT_FOUND, ErrorKind.INVALID_REQUEST):
        raise PreflightError(
            f"--model {target.model}: the engine refuses it ({probe.error.message}); it serves: {', '.join(listed)}"
        )
