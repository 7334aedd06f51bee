"""Which HTTP proxy, if any, a request to a URL goes through.

The adapters never read the environment: the CLI and the pytest plugin build a
ProxyConfig from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (what httpx, curl
and requests honour by default) or from ``--proxy``, and hand it in.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["ProxyConfig"]

_bypassed: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
"""The stdlib's NO_PROXY matching (curl's rules: suffixes, ``*``, host:port), given the list rather than reading
the environment; typeshed does not list it."""


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Proxy URLs by scheme of the target, and the hosts that bypass them (curl's NO_PROXY syntax)."""

    http: str | None = None
    https: str | None = None
    no_proxy: str | None = None

    @classmethod
    def everywhere(cls, proxy: str) -> ProxyConfig:
        """Every request through `proxy`, whatever the target (``--proxy``)."""
        return cls(http=proxy, https=proxy)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProxyConfig:
        """The conventional variables, lower case first (as curl and urllib read them)."""

        def read(name: str) -> str | None:
            return environ.get(name.lower()) or environ.get(name.upper()) or None

        return cls(http=read("http_proxy"), https=read("https_proxy"), no_proxy=read("no_proxy"))

    def for_url(self, url: str) -> str | None:
        """The proxy a request to `url` goes through, or None for a direct connection."""
        parts = urllib.parse.urlsplit(url)
        proxy = self.https if parts.scheme == "https" else self.http
        if proxy is None or not parts.hostname:
            return None
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if self.no_proxy and _bypassed(host, {"no": self.no_proxy}):
            return None
        return proxy
