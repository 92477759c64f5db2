"""API keys: random, shown once, stored as HMAC-SHA256 under the server's secret."""

import hashlib
import hmac
import secrets

KEY_PREFIX = "pgk_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(secret: str, key: str) -> str:
    """Keyed, so a stolen table of hashes cannot be checked against guesses without the secret;
    deterministic, so a key is found by its hash in one index lookup."""
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def same_key(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
