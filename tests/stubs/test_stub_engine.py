"""The stub engine itself: determinism of its tokens, script validation, standalone serving."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from conform.stubs import Script, ScriptError, StubServer, UnknownEngineError, generate_tokens, load_script
from tests.helpers import run_conform


def test_tokens_depend_only_on_seed_prompt_and_salt() -> None:
    assert generate_tokens(1, "p", 20) == generate_tokens(1, "p", 20)
    assert generate_tokens(1, "p", 20) != generate_tokens(2, "p", 20)
    assert generate_tokens(1, "p", 20) != generate_tokens(1, "q", 20)
    assert generate_tokens(1, "p", 20) != generate_tokens(1, "p", 20, salt="new build")
    assert generate_tokens(1, "p", 5) == generate_tokens(1, "p", 20)[:5]


def test_script_rejects_unknown_fault_and_fields() -> None:
    with pytest.raises(ValidationError):
        Script.model_validate({"faults": [{"kind": "explode"}]})
    with pytest.raises(ValidationError):
        Script.model_validate({"faults": [{"kind": "stall", "phase": "sometimes"}]})
    with pytest.raises(ValidationError):
        Script.model_validate({"token_delay": 3})


def test_load_script_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"faults": [{"kind": "status", "status": 200}]}))
    with pytest.raises(ScriptError, match=r"s\.json: field faults\.0\.status.*greater than or equal to 400"):
        load_script(path)


def test_every_packaged_feature_script_is_valid() -> None:
    from conform.features import FEATURES_DIR

    scripts = sorted(FEATURES_DIR.glob("*/*.json"))
    assert scripts
    for path in scripts:
        load_script(path)


def test_unknown_stub_engine() -> None:
    with pytest.raises(UnknownEngineError, match="no stub for engine 'nope'"):
        StubServer("nope")


async def test_unknown_path_is_llamacpp_shaped_404() -> None:
    async with StubServer("llamacpp") as stub, httpx.AsyncClient() as client:
        response = await client.get(stub.url + "/nope")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}


async def test_non_streamed_completion_matches_the_streamed_tokens() -> None:
    body = {"prompt": "hello", "n_predict": 5, "seed": 3}
    async with StubServer("llamacpp") as stub, httpx.AsyncClient() as client:
        whole = (await client.post(stub.url + "/completion", json=body)).json()
    expected = generate_tokens(3, "hello", 5)
    assert whole["content"] == "".join(t.text for t in expected)
    assert whole["stop"] is True and whole["tokens_predicted"] == 5


def test_standalone_stub_prints_its_url_first_and_serves(stub_process) -> None:
    stub = stub_process()
    response = httpx.get(stub.url + "/health", timeout=5)
    assert response.json() == {"status": "ok"}
    stub.stop()
    assert stub.process.returncode == 0, "SIGTERM stops the stub cleanly"


def test_stub_on_a_taken_port_is_a_usage_error(stub_process) -> None:
    stub = stub_process()
    port = stub.url.rsplit(":", 1)[1]
    result = run_conform("stub", "llamacpp", "--port", port, timeout=30)
    assert result.returncode == 2
    assert "cannot listen on 127.0.0.1:" in result.stderr and "Traceback" not in result.stderr
