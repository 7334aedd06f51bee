"""What is under test: an engine at a URL, or an embedded stub of that engine."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from conform.adapters import ProxyConfig, fingerprint, split_llamaswap_url

__all__ = ["Target", "TargetError", "check_url", "mask_url_token", "proxy_config", "request_extra"]


def proxy_config(explicit: str | None, environ: Mapping[str, str]) -> ProxyConfig:
    """`explicit` (``--proxy``) for every request, else what the conventional variables say; a proxy URL that
    is not ``http(s)://host[:port]`` raises TargetError."""
    config = ProxyConfig.everywhere(explicit) if explicit else ProxyConfig.from_environ(environ)
    for given in {config.http, config.https} - {None}:
        parts = urlsplit(str(given))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            source = "--proxy" if explicit else "HTTP_PROXY/HTTPS_PROXY"
            raise TargetError(f"{source}: {given!r} is not a proxy URL (http://host:port)")
    return config


def request_extra(items: Sequence[str], option: str = "--request-extra") -> dict[str, Any]:
    """Fields to add to every generation request, from ``KEY=VALUE`` (a string) and ``KEY:=JSON`` (any JSON
    value) items, as HTTPie writes them; a later item for the same key wins. A malformed item raises
    TargetError naming it."""
    fields: dict[str, Any] = {}
    for item in items:
        key, equals, value = item.partition("=")
        typed = key.endswith(":")
        key = key.removesuffix(":")
        if not equals or not key:
            raise TargetError(f"{option}: {item!r} is not KEY=VALUE (a string) or KEY:=JSON")
        if not typed:
            fields[key] = value
            continue
        try:
            fields[key] = json.loads(value)
        except ValueError as error:
            raise TargetError(f"{option}: the value of {key!r} is not JSON ({error})") from None
    return fields


def check_url(url: str, engine: str, option: str = "--url") -> None:
    """A base URL the engine's adapter can use; TargetError with a hint otherwise (an endpoint pasted as the
    URL names the base to give instead)."""
    parts = urlsplit(url)
    schemes = ("http", "https", "llama-swap") if engine == "llamaswap" else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        form = "http(s)://host[:port][/path]" + (" or llama-swap://[token@]host:port" if engine == "llamaswap" else "")
        raise TargetError(f"{option}: bad URL {mask_url_token(url)!r}: expected {form}")
    try:
        _ = parts.port
    except ValueError:
        raise TargetError(f"{option}: bad URL {url!r}: the port is not a number from 0 to 65535") from None
    endpoint = _ENDPOINT.search(parts.path)
    if endpoint is not None:
        base = urlunsplit((parts.scheme, parts.netloc, parts.path[: endpoint.start()], "", ""))
        raise TargetError(
            f"{option} {mask_url_token(url)} is an endpoint ({endpoint.group(0)}), not the server's base URL: "
            f"try {option} {mask_url_token(base)}"
        )


_ENDPOINT = re.compile(
    r"(/v1/chat/completions|/v1/completions|/v1/messages|/v1/models|/completions?|/chat/completions|"
    r"/generate(_stream)?|/api/(generate|chat|tags)|/v2/models/.*|/health|/props|/slots|/tokenize)/?$"
)
"""Paths of the endpoints users paste as a URL: conform wants the server's base (with /v1 for openai)."""


def mask_url_token(text: str) -> str:
    """Replace the token of every ``llama-swap://token@host`` in `text` by its fingerprint."""
    return _URL_TOKEN.sub(lambda m: m.group(1) + fingerprint(m.group(2)) + "@", text)


_URL_TOKEN = re.compile(r"(llama-swap://)([^@/\s]+)@")


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _looks_like_a_key(name: str) -> bool:
    """Whether an --api-key-env value is a key rather than a variable's name: not a name a shell could
    export, or a long run of mixed letters and digits (``sk-…``, ``hf_…``, a hex token)."""
    if not _VARIABLE.fullmatch(name):
        return True
    mixed = any(c.isdigit() for c in name) and any(c.islower() for c in name)
    return len(name) >= 20 and mixed


class TargetError(ValueError):
    """A target that cannot be built from the given options (message is one line)."""


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str
    url: str | None = None
    """None: an embedded stub of `engine` is started for each scenario."""
    model: str | None = None
    api_key_env: str | None = None
    """Name of the environment variable that holds the secret (never the secret itself)."""
    timeout: float = Field(default=30.0, gt=0)
    """The total deadline of every request and stream, first byte included."""
    connect_timeout: float = Field(default=5.0, gt=0)
    idle_timeout: float | None = Field(default=None, gt=0)
    """Longest silence inside a started stream; None: the total deadline alone bounds it."""
    insecure: bool = False
    ca_bundle: str | None = None
    """A PEM file of the CAs to trust instead of the system's (private or self-signed engines)."""
    proxy: ProxyConfig = ProxyConfig()
    """The HTTP proxy to reach the target through (--proxy, else HTTP_PROXY/HTTPS_PROXY minus NO_PROXY)."""
    request_extra: dict[str, Any] = Field(default_factory=dict)
    """Fields added to every generation request (--request-extra): an engine's own options."""
    engine_version: str | None = None
    """A declared version label (--engine-version): what the report compares builds by, recorded as declared."""

    @property
    def is_stub(self) -> bool:
        return self.url is None

    @property
    def label(self) -> str:
        return f"{self.engine}@stub" if self.is_stub else self.engine

    @property
    def display_url(self) -> str:
        """The URL for reports and logs: a token written into it (``llama-swap://token@host``) is masked."""
        if self.url is None:
            return f"stub://{self.engine}"
        return mask_url_token(self.url)

    def api_key(self) -> str | None:
        """The secret: from the named environment variable, else a token written into the URL."""
        if self.api_key_env is None:
            return split_llamaswap_url(self.url)[1] if self.url else None
        value = os.environ.get(self.api_key_env)
        if value:
            return value
        if _looks_like_a_key(self.api_key_env):
            # The user pasted the key itself: never echo it (it would land in CI logs).
            raise TargetError(
                "--api-key-env takes the NAME of an environment variable that holds the key, and what was given "
                f"looks like a key itself (not printed; {len(self.api_key_env)} characters): "
                "export it, e.g. MY_KEY=…, and pass --api-key-env MY_KEY"
            )
        raise TargetError(f"environment variable {self.api_key_env} (from --api-key-env) is not set or empty")
