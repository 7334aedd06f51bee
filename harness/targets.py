"""What is under test: an engine at a URL, or an embedded stub of that engine."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Target", "TargetError"]


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
    insecure: bool = False

    @property
    def is_stub(self) -> bool:
        return self.url is None

    @property
    def label(self) -> str:
        return f"{self.engine}@stub" if self.is_stub else self.engine

    @property
    def display_url(self) -> str:
        return self.url or f"stub://{self.engine}"

    def api_key(self) -> str | None:
        """Read the secret from the named environment variable (the CLI and plugin are the only callers)."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise TargetError(f"environment variable {self.api_key_env} (from --api-key-env) is not set or empty")
        return value
