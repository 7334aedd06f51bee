"""Ed25519 signatures over a report: who published it, not only whether it changed.

The digest (`content_digest`) proves nothing about authorship: anyone who edits a report can recompute it.
A signature can only be made with the publisher's private key, and anyone with the public key can check it.
Both cover the same canonical content: the report without its `digest` and `signature` fields.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from .model import ReportSignature, canonical_content

__all__ = ["KeyFileError", "fingerprint", "load_private_key", "load_public_key", "sign", "signature_problem"]


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file and why."""


def _pem(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"{option}: cannot read {path}: {error.strerror}") from None


def load_private_key(path: Path, option: str = "--sign-key") -> Ed25519PrivateKey:
    """An unencrypted Ed25519 private key in PEM (``openssl genpkey -algorithm ed25519``)."""
    try:
        key = load_pem_private_key(_pem(path, option), password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{option}: {path} is not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{option}: {path} is a {type(key).__name__.lstrip('_')}, not an Ed25519 key")
    return key


def load_public_key(path: Path, option: str = "--public-key") -> Ed25519PublicKey:
    """An Ed25519 public key in PEM (``openssl pkey -in key.pem -pubout``)."""
    try:
        key = load_pem_public_key(_pem(path, option))
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{option}: {path} is not a PEM public key ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{option}: {path} is a {type(key).__name__.lstrip('_')}, not an Ed25519 key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """``sha256:`` of the raw 32-byte public key: what a report names its signer by."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def sign(document: dict[str, Any], key: Ed25519PrivateKey) -> ReportSignature:
    """The signature of a report document's canonical content."""
    value = key.sign(canonical_content(document))
    return ReportSignature(
        algorithm="ed25519",
        public_key_fingerprint=fingerprint(key.public_key()),
        value=base64.b64encode(value).decode("ascii"),
    )


def signature_problem(document: dict[str, Any], key: Ed25519PublicKey) -> str | None:
    """Why the document's signature does not prove it was published by the holder of `key`; None if it does."""
    raw = document.get("signature")
    if not raw:
        return "the report carries no signature"
    signature = ReportSignature.model_validate(raw)
    if signature.public_key_fingerprint != fingerprint(key):
        return (
            f"signed by another key ({signature.public_key_fingerprint}), not the given public key ({fingerprint(key)})"
        )
    try:
        key.verify(base64.b64decode(signature.value, validate=True), canonical_content(document))
    except (InvalidSignature, ValueError):
        return "the signature does not match the content: the report was modified after it was signed"
    return None
