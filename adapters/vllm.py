"""vLLM's OpenAI-compatible server (docs/wires.md §3): the OpenAI adapter plus vLLM's own endpoints.

Differences from OpenAI that matter here: ``/health`` answers 200 with an
empty body, ``/version`` names the release, ``/v1/models`` states
``max_model_len``, ``return_token_ids`` adds each chunk's token ids, every
sampling field is sent (server defaults may come from the model's
generation_config), and error bodies have two shapes (flat before 0.10.1,
nested after), both read by the default describer.
"""

from __future__ import annotations

from typing import Any, ClassVar

from conform.stubs.openai import create_vllm_app as stub_app

from ._engines import EngineDescriptor
from ._openai import OpenAIAdapter
from ._types import EngineVersion, Health, Props, TaskRequest
from .capabilities import Capability

__all__ = ["ENGINE", "VllmAdapter"]


class VllmAdapter(OpenAIAdapter):
    engine = "vllm"
    capabilities = OpenAIAdapter.capabilities | {Capability.TOKEN_IDS, Capability.TOP_K}
    max_tokens_field: ClassVar[str] = "max_tokens"

    def extra_fields(self, req: TaskRequest) -> dict[str, Any]:
        return {
            "top_k": req.top_k if req.top_k is not None else -1,
            "min_p": 0.0,
            "return_token_ids": True,
        }

    async def health(self) -> Health:
        return await self.probe_health("/health", lambda _body: True)

    async def props(self) -> Props:
        body = (await self.http.request("GET", self.api_prefix + "/models")).json()
        data = body.get("data") if isinstance(body, dict) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        length = first.get("max_model_len")
        return Props(model=first.get("id"), ctx_max=length if isinstance(length, int) else None)

    async def engine_version(self) -> EngineVersion:
        body = (await self.http.request("GET", "/version")).json()
        version = body.get("version") if isinstance(body, dict) else None
        models = await self.list_models()
        return EngineVersion(version=version if isinstance(version, str) else None, model=models[0] if models else None)


ENGINE = EngineDescriptor(
    name="vllm",
    adapter=VllmAdapter,
    speaks="the OpenAI routes plus `/health`, `/version`, `return_token_ids`",
    notes="both error body shapes (flat before 0.10.1, nested after)",
    stub=stub_app,
    default_port=8000,
    rank=1,
)
"""The ``conform.engines`` entry point of this engine."""
