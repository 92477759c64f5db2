"""What the operator configures for an iso20022 bank (PUT /v1/banks/{slug}, `config`)."""

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

# RFC 2104 discourages HMAC keys shorter than the hash output; 16 characters is the least a shared
# secret may be here, so a placeholder like "secret" is refused when it is set, not after a breach.
MIN_SECRET_LENGTH = 16


def _as_list(value: Any) -> Any:
    """One secret or several: a bank rotating its secret sends with the new one while the old one
    may still be in flight, so both verify for a while."""
    return [value] if isinstance(value, str | SecretStr) else value


def _check_secret(secret: SecretStr) -> SecretStr:
    text = secret.get_secret_value()
    if len(text) < MIN_SECRET_LENGTH:
        raise ValueError(f"a secret is at least {MIN_SECRET_LENGTH} characters")
    if text != text.strip():
        raise ValueError("a secret has no leading or trailing whitespace")
    return secret


class Iso20022Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Secrets the bank signs notifications with; any of them verifies.
    inbound_secrets: Annotated[list[SecretStr], BeforeValidator(_as_list), Field(min_length=1)]
    # The secret our instructions are signed with.
    outbound_secret: SecretStr

    @field_validator("inbound_secrets")
    @classmethod
    def _check_inbound(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        return [_check_secret(secret) for secret in secrets]

    @field_validator("outbound_secret")
    @classmethod
    def _check_outbound(cls, secret: SecretStr) -> SecretStr:
        return _check_secret(secret)
