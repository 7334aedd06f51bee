"""llama-swap (docs/wires.md §8): an OpenAI chat proxy that starts models on demand, plus its management API.

- Chat goes through the OpenAI adapter at ``{base}/v1`` with the legacy
  ``max_tokens`` and ``Authorization: Bearer no-key`` when no key is set.
- A cold model swap holds the response headers until the upstream is healthy
  (``healthCheckTimeout``, at least 15 s): there is no first-byte read timeout,
  only the overall deadline (the HTTP layer reads headers under the total
  deadline alone).
- Management: models and their status, running processes (raw JSON), unload
  all or one; image generation returns the decoded image bytes.
- Target URLs may be written ``llama-swap://[token@]host:port``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from conform.stubs.llamaswap import create_app as stub_app

from ._base import AdapterOptions
from ._engines import EngineDescriptor
from ._openai import OpenAIAdapter
from ._types import EngineVersion, Health
from .capabilities import Capability
from .errors import ErrorKind, WorkerError

__all__ = ["SCHEME", "LlamaSwapAdapter", "split_llamaswap_url"]

SCHEME = "llama-swap"
PLACEHOLDER_KEY = "no-key"


def split_llamaswap_url(url: str) -> tuple[str, str | None]:
    """``llama-swap://[token@]host:port[/path]`` -> (``http://host:port[/path]``, token); other URLs pass through."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    token = parts.username or None
    return urlunsplit(("http", netloc, parts.path, parts.query, "")), token


class LlamaSwapAdapter(OpenAIAdapter):
    engine = "llamaswap"
    capabilities = (OpenAIAdapter.capabilities - {Capability.COMPLETIONS, Capability.LOGPROBS}) | {
        Capability.MODEL_MANAGEMENT,
        Capability.IMAGE_GENERATION,
        Capability.MODEL_SELECTION,
    }
    max_tokens_field: ClassVar[str] = "max_tokens"
    chat_only: ClassVar[bool] = True

    def __init__(self, base_url: str, options: AdapterOptions | None = None) -> None:
        url, token = split_llamaswap_url(base_url)
        options = options or AdapterOptions()
        if token is not None and options.api_key is None:
            options = dataclasses.replace(options, api_key=token)
        super().__init__(url, options)

    def auth_headers(self, api_key: str | None) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {api_key or PLACEHOLDER_KEY}"}

    async def health(self) -> Health:
        """The proxy's liveness only: says nothing about whether any model is loaded."""
        return await self.probe_health("/health", lambda body: str(body).strip() == "OK")

    async def engine_version(self) -> EngineVersion:
        body = (await self.http.request("GET", "/api/version")).json()
        version = body.get("version") if isinstance(body, dict) else None
        models = await self.list_models()
        return EngineVersion(version=str(version) if version is not None else None, model=models[0] if models else None)

    # -- management -------------------------------------------------------------------------------

    async def model_status(self) -> dict[str, str]:
        """Every configured model and whether it is loaded (``status.value``; absent in old versions)."""
        found: dict[str, str] = {}
        for entry in await self.model_entries():
            status = entry.get("status")
            found[str(entry["id"])] = str(status.get("value")) if isinstance(status, dict) else "unknown"
        return found

    async def running(self) -> Any:
        """``GET /running`` as the proxy sends it: its shape changed across versions, so it stays raw JSON."""
        return (await self.http.request("GET", "/running")).json()

    async def unload(self, model: str | None = None) -> None:
        """Unload one model, or every model when `model` is None."""
        path = "/api/models/unload" if model is None else f"/api/models/unload/{model}"
        await self.http.request("POST", path, retry=False)

    async def generate_image(self, prompt: str, *, model: str | None = None, size: str = "64x64") -> list[bytes]:
        """``POST /v1/images/generations`` with ``b64_json``; the decoded bytes of each image."""
        body: dict[str, Any] = {"prompt": prompt, "n": 1, "size": size, "response_format": "b64_json"}
        if model is not None:
            body["model"] = model
        reply = (await self.http.request("POST", "/v1/images/generations", json_body=body)).json()
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list) or not data:
            raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"{self.base_url}/v1/images/generations returned no data")
        images: list[bytes] = []
        for n, entry in enumerate(data):
            encoded = entry.get("b64_json") if isinstance(entry, dict) else None
            if not isinstance(encoded, str):
                raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"image {n} has no b64_json")
            try:
                images.append(base64.b64decode(encoded, validate=True))
            except binascii.Error as exc:
                raise WorkerError(ErrorKind.PROTOCOL_VIOLATION, f"image {n}: b64_json is not base64: {exc}") from None
        return images


ENGINE = EngineDescriptor(
    name="llamaswap",
    adapter=LlamaSwapAdapter,
    speaks="OpenAI chat at `{base}/v1`, `/running`, `/api/models/unload`, `/v1/images/generations`",
    notes="`--url llama-swap://[token@]host:port`; no first-byte timeout (a cold swap can take ≥ 15 s), "
    "the total deadline bounds it",
    stub=stub_app,
    default_port=8080,
    rank=6,
)
"""The ``conform.engines`` entry point of this engine."""
