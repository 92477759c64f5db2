"""Sealing secrets at rest: Fernet (AES-128-CBC with HMAC-SHA256) under a key derived from
SECRET_KEY and a purpose, so that what is sealed for one purpose cannot be unsealed as another."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["InvalidToken", "seal", "unseal"]


def _fernet(secret_key: str, purpose: str) -> Fernet:
    digest = hashlib.sha256(f"prepaid-guard {purpose}\x00".encode() + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret_key: str, purpose: str, plaintext: bytes) -> bytes:
    return _fernet(secret_key, purpose).encrypt(plaintext)


def unseal(secret_key: str, purpose: str, token: bytes) -> bytes:
    """The plaintext; raises InvalidToken when `token` was not sealed under this key and purpose."""
    return _fernet(secret_key, purpose).decrypt(token)
