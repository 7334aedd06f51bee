"""Secret redaction: every message, header dump and artifact goes through one Redactor."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

__all__ = ["SENSITIVE_HEADERS", "Redactor", "fingerprint"]

SENSITIVE_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})

_MIN_SECRET_LEN = 4


def fingerprint(secret: str) -> str:
    """A short stand-in that lets two redacted values be told apart without revealing either."""
    digest = hashlib.sha256(secret.encode()).hexdigest()[:6]
    prefix = secret[:3] if len(secret) >= 12 else ""
    return f"{prefix}…[fp:{digest}]"


class Redactor:
    """Replaces every known secret (and sensitive header value) by its fingerprint."""

    __slots__ = ("_replacements",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}
        # Longest first, so a secret that contains another is masked whole.
        self._replacements = [(s, fingerprint(s)) for s in sorted(unique, key=len, reverse=True)]

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([s for s, _ in self._replacements] + list(secrets))

    def __call__(self, text: str) -> str:
        for secret, stand_in in self._replacements:
            if secret in text:
                text = text.replace(secret, stand_in)
        return text

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in headers.items():
            out[name] = fingerprint(value) if name.lower() in SENSITIVE_HEADERS else self(value)
        return out
