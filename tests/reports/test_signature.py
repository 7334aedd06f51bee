"""Report signatures: a signed report verifies with its publisher's key, and with no other, and not after an edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from conform.reports import (
    CapabilitySummary,
    CheckResult,
    KeyFileError,
    Report,
    TargetInfo,
    content_digest,
    fingerprint,
    load_private_key,
    load_public_key,
    signature_problem,
    utc_now,
    write_json_report,
)


def _report() -> Report:
    result = CheckResult(
        id="ordering.indices", scenario="indices", feature="ordering", level="core", engine="llamacpp",
        status="passed", duration_s=0.1,
    )  # fmt: skip
    return Report.assemble(
        started_at=utc_now(),
        reproduce="conform run",
        targets=[
            TargetInfo(
                engine="llamacpp",
                url="http://127.0.0.1:8080",
                engine_version="b11434",
                model="gemma",
                model_digest=None,
                capabilities=CapabilitySummary(source="inferred", supported=[], unsupported=[]),
            )
        ],
        results=[result],
    )


def _signed(tmp_path: Path, key: Ed25519PrivateKey) -> dict[str, object]:
    path = tmp_path / "report.json"
    write_json_report(_report(), path, key)
    document: dict[str, object] = json.loads(path.read_text())
    return document


def test_a_signed_report_verifies_with_its_key_only() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    document = json.loads(_report().to_json())
    assert "signature" not in document
    from conform.reports.signature import sign

    document["signature"] = sign(document, key).model_dump(mode="json")
    assert document["signature"]["public_key_fingerprint"] == fingerprint(key.public_key())
    assert signature_problem(document, key.public_key()) is None
    problem = signature_problem(document, other.public_key())
    assert problem is not None and "signed by another key" in problem


def test_an_edit_with_a_recomputed_digest_still_breaks_the_signature(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    document = _signed(tmp_path, key)
    assert document["digest"] == content_digest(document), "the signature is left out of the digest's content"
    forged = json.loads(json.dumps(document))
    forged["targets"][0]["engine_version"] = "FORGED"
    forged["digest"] = content_digest(forged)  # what anyone can do: the digest alone is no proof
    assert signature_problem(forged, key.public_key()) == (
        "the signature does not match the content: the report was modified after it was signed"
    )
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    assert signature_problem(unsigned, key.public_key()) == "the report carries no signature"


def test_keys_are_read_from_pem_and_a_wrong_file_is_named(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / "key.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public = tmp_path / "key.pub.pem"
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    assert fingerprint(load_private_key(private).public_key()) == fingerprint(load_public_key(public))
    rsa = tmp_path / "rsa.pem"
    rsa.write_bytes(generate_private_key(65537, 2048).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(KeyFileError, match=r"--sign-key: .*rsa.pem is a RSAPrivateKey, not an Ed25519 key"):
        load_private_key(rsa)
    with pytest.raises(KeyFileError, match=r"--public-key: .*key.pem is not a PEM public key"):
        load_public_key(private)
    with pytest.raises(KeyFileError, match=r"--sign-key: cannot read .*nothing.pem: No such file"):
        load_private_key(tmp_path / "nothing.pem")
