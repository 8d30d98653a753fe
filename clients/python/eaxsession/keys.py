"""X25519 keys as eaxchat shows them.

This module owns fingerprints ("SHA256:..." as ssh prints one), public-key text
("x25519:" and base64) and its parsing, and making key pairs (`cryptography`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519


def fingerprint(public: bytes) -> str:
    """"SHA256:" + unpadded standard base64 of SHA-256(public key), like ssh."""
    digest = hashlib.sha256(public).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def public_key_text(public: bytes) -> str:
    return "x25519:" + base64.b64encode(public).decode("ascii")


def parse_public_key(text: str) -> bytes:
    prefix = "x25519:"
    if not text.startswith(prefix):
        raise ValueError("public key must start with 'x25519:'")
    try:
        raw = base64.b64decode(text[len(prefix):], validate=True)
    except binascii.Error as e:
        raise ValueError(f"public key is not base64: {e}") from None
    if len(raw) != 32:
        raise ValueError("public key must be 32 bytes")
    return raw


def public_from_private(private: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def generate_keypair() -> tuple[bytes, bytes]:
    """(private, public), 32 raw bytes each."""
    key = x25519.X25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    return private, public_from_private(private)
