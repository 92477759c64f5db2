"""Signature primitives the bank adapters (and the bank simulator) are built from. Each bank's own
rules (what is signed, how it is encoded) live in its adapter; this module only knows algorithms.
Every comparison of secret-derived values is constant-time."""

import base64
import binascii
import hashlib
import hmac
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes as std_hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from tongsuopy.crypto import hashes as gm_hashes
from tongsuopy.crypto.asymciphers import ec as gm_ec
from tongsuopy.crypto.asymciphers import utils as gm_utils

SM2_DEFAULT_USER_ID = b"1234567812345678"  # GM/T 0009; the SM2 implementation uses it by default


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two strings or byte strings."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def hex_digest(algorithm: str, data: bytes) -> str:
    """Upper-case hex digest with `algorithm` ("MD5" or "SHA256")."""
    return hashlib.new(algorithm.lower(), data).hexdigest().upper()


def hmac_sha256_hex(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


# RSA: SHA256withRSA, PKCS#1 v1.5, signatures in base64.


@lru_cache(maxsize=64)
def _rsa_private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


@lru_cache(maxsize=64)
def _rsa_public(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def check_rsa_private_pem(pem: str) -> None:
    _rsa_private(pem)


def check_rsa_public_pem(pem: str) -> None:
    _rsa_public(pem)


def rsa_sign(private_key_pem: str, data: bytes) -> str:
    signature = _rsa_private(private_key_pem).sign(data, padding.PKCS1v15(), std_hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa_verify(public_key_pem: str, data: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        _rsa_public(public_key_pem).verify(signature, data, padding.PKCS1v15(), std_hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# SM2 with SM3 (GB/T 32918, GM/T 0009, default user id): keys and signatures as fixed-width hex,
# as the gmbank spec writes them. Tongsuo does the curve arithmetic in C.


@lru_cache(maxsize=64)
def _sm2_private(private_key_hex: str) -> gm_ec.EllipticCurvePrivateKey:
    if len(private_key_hex) != 64:
        raise ValueError("an SM2 private key is 64 hex characters")
    return gm_ec.derive_private_key(int(private_key_hex, 16), gm_ec.SM2())


@lru_cache(maxsize=64)
def _sm2_public(public_key_hex: str) -> gm_ec.EllipticCurvePublicKey:
    if len(public_key_hex) != 128:
        raise ValueError("an SM2 public key is 128 hex characters (x then y)")
    x, y = int(public_key_hex[:64], 16), int(public_key_hex[64:], 16)
    return gm_ec.EllipticCurvePublicNumbers(x, y, gm_ec.SM2()).public_key()


def check_sm2_private_hex(private_key_hex: str) -> None:
    _sm2_private(private_key_hex)


def check_sm2_public_hex(public_key_hex: str) -> None:
    _sm2_public(public_key_hex)


def sm2_public_key_hex(private_key_hex: str) -> str:
    numbers = _sm2_private(private_key_hex).public_key().public_numbers()
    return f"{numbers.x:064x}{numbers.y:064x}"


def sm2_generate_private_key_hex() -> str:
    key = gm_ec.generate_private_key(gm_ec.SM2())
    return f"{key.private_numbers().private_value:064x}"


def sm2_sign(private_key_hex: str, data: bytes) -> str:
    """128 hex characters: r then s, 32 bytes each, big-endian."""
    der = _sm2_private(private_key_hex).sign(data, gm_ec.ECDSA(gm_hashes.SM3()))
    r, s = decode_dss_signature(der)
    return f"{r:064x}{s:064x}"


def sm2_verify(public_key_hex: str, data: bytes, signature_hex: str) -> bool:
    if len(signature_hex) != 128:
        return False
    try:
        r, s = int(signature_hex[:64], 16), int(signature_hex[64:], 16)
        der = gm_utils.encode_dss_signature(r, s)
        _sm2_public(public_key_hex).verify(der, data, gm_ec.ECDSA(gm_hashes.SM3()))
    except Exception:  # any failure to verify is a bad signature, whatever the library raises
        return False
    return True
