"""What the operator configures for a ums bank (API.md "Banks"). Inbound credentials may be lists,
so the bank can rotate its keys without a gap: any one of them verifies."""

from typing import Annotated, Any

from cryptography.exceptions import UnsupportedAlgorithm
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from app.kit.signatures import check_rsa_private_pem, check_rsa_public_pem


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | SecretStr) else value


def _private_pem(value: SecretStr) -> SecretStr:
    try:
        check_rsa_private_pem(value.get_secret_value())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The library's message could quote the key; say only what is wrong.
        raise ValueError("not an unencrypted RSA private key in PEM") from None
    return value


def _public_pem(value: str) -> str:
    try:
        check_rsa_public_pem(value)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not an RSA public key in PEM") from None
    return value


NotifyKey = Annotated[SecretStr, Field(min_length=1)]
PublicPem = Annotated[str, AfterValidator(_public_pem)]


class UmsConfig(BaseModel):
    # An error must not echo a key back to the operator's screen or a log.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    # The notify key(s) appended to the notification's signing string.
    md5_key: Annotated[list[NotifyKey], BeforeValidator(_as_list), Field(min_length=1)]
    group_id: Annotated[str, Field(min_length=1)]
    # Ours: signs instructions.
    private_key_pem: Annotated[SecretStr, AfterValidator(_private_pem)]
    # The bank's: verifies its responses and statement files.
    bank_public_key_pem: Annotated[list[PublicPem], BeforeValidator(_as_list), Field(min_length=1)]
