"""What the operator configures for a gmbank bank (API.md "Banks"). The bank's public key may be a
list, so the bank can rotate its key without a gap: any one of them verifies."""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from app.kit.signatures import check_sm2_private_hex, check_sm2_public_hex

_HEX = re.compile(r"[0-9A-Fa-f]+")
# The order of the SM2 curve's base point (GB/T 32918.5). A private key d lies in [1, n - 2], since
# signing inverts 1 + d; the library would quietly reduce a larger value instead of refusing it.
_SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _private_hex(value: SecretStr) -> SecretStr:
    key = value.get_secret_value()
    try:
        if len(key) != 64 or not _HEX.fullmatch(key) or not 1 <= int(key, 16) <= _SM2_N - 2:
            raise ValueError
        check_sm2_private_hex(key)
    except Exception:  # whatever the library raises; its message could quote the key
        raise ValueError("not an SM2 private key of 64 hex characters") from None
    return value


def _public_hex(value: str) -> str:
    try:
        if len(value) != 128 or not _HEX.fullmatch(value):
            raise ValueError
        check_sm2_public_hex(value)  # refuses a point that is not on the curve
    except Exception:  # whatever the library raises
        raise ValueError("not an SM2 public key of 128 hex characters (x then y)") from None
    return value


PublicHex = Annotated[str, AfterValidator(_public_hex)]


class GmbankConfig(BaseModel):
    # An error must not echo a key back to the operator's screen or a log.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    # Sent in X-GM-AppId and signed; printable ASCII because it travels in an HTTP header.
    app_id: Annotated[str, Field(pattern=r"^[\x21-\x7e]+$", max_length=64)]
    # Ours: signs instructions and queries.
    private_key_hex: Annotated[SecretStr, AfterValidator(_private_hex)]
    # The bank's: verifies its notifications and its responses.
    bank_public_key_hex: Annotated[list[PublicHex], BeforeValidator(_as_list), Field(min_length=1)]
