"""A vendor signs the report it publishes; a reader checks who published it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from conform.reports import content_digest
from tests.harness.test_cli import assert_one_line_error
from tests.helpers import run_conform

pytestmark = pytest.mark.slow  # end to end: `conform` in a subprocess against a stub


def _key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_a_signed_report_verifies_with_the_right_key_only(stub_process, tmp_path: Path) -> None:
    stub = stub_process({})
    (vendor, vendor_pub), (_, other_pub) = _key_pair(tmp_path, "vendor"), _key_pair(tmp_path, "other")
    report = tmp_path / "report.json"
    run = run_conform(
        "run", "--engine", "llamacpp", "--url", stub.url, "--checks", "ordering.indices",
        "--report", str(report), "--sign-key", str(vendor), timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    verified = run_conform("report", "--verify", str(report), "--public-key", str(vendor_pub))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified: unmodified, signed with the private key of sha256:" in verified.stdout
    unchecked = run_conform("report", "--verify", str(report))
    assert unchecked.returncode == 0 and "not checked: give --public-key" in unchecked.stdout
    other = run_conform("report", "--verify", str(report), "--public-key", str(other_pub))
    assert other.returncode == 1 and "NOT VERIFIED: signed by another key" in other.stdout

    document = json.loads(report.read_text())
    document["targets"][0]["engine_version"] = "FORGED"
    document["digest"] = content_digest(document)  # the README's recipe: anyone can recompute the digest
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    caught = run_conform("report", "--verify", str(forged), "--public-key", str(vendor_pub))
    assert caught.returncode == 1
    assert "NOT VERIFIED: the signature does not match the content" in caught.stdout


def test_signing_mistakes_are_exit_2_before_any_work(tmp_path: Path) -> None:
    vendor, vendor_pub = _key_pair(tmp_path, "vendor")
    no_report = run_conform("run", "--sign-key", str(vendor))
    assert no_report.returncode == 2
    assert_one_line_error(no_report.stderr, "--sign-key signs the JSON report: give --report PATH too")
    public_as_private = run_conform("run", "--report", str(tmp_path / "r.json"), "--sign-key", str(vendor_pub))
    assert public_as_private.returncode == 2
    assert_one_line_error(public_as_private.stderr, "--sign-key:", "is not an unencrypted PEM private key")
    assert not (tmp_path / "r.json").exists()
    alone = run_conform("report", str(tmp_path / "r.json"), "--public-key", str(vendor_pub))
    assert alone.returncode == 2
    assert_one_line_error(alone.stderr, "--public-key goes with --verify")
