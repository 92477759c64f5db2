"""What the simulator is told: where the service is, and each bank it plays with that bank's keys.

Key names say whose key it is from the bank's side: the bank signs with its own private key (the
service holds the public half) and checks the service's messages with the service's public key.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from app.kit import signatures

Adapter = Literal["ums", "iso20022", "gmbank"]

# The keys each adapter needs; checked on load so a misconfigured bank fails at start, not mid-run.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "ums": (
        "md5_key",
        "bank_private_key_pem",
        "service_public_key_pem",
        "group_id",
        "mid",
        "tid",
    ),
    "iso20022": ("secret_to_service", "secret_from_service"),
    "gmbank": ("app_id", "bank_private_key_hex", "service_public_key_hex"),
}


class SimBank(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    adapter: Adapter
    # ums
    md5_key: SecretStr | None = None
    sign_type: Literal["SHA256", "MD5"] = "SHA256"
    bank_private_key_pem: SecretStr | None = None
    service_public_key_pem: str | None = None
    group_id: str | None = None
    mid: str | None = None
    tid: str | None = None
    # iso20022
    secret_to_service: SecretStr | None = None  # the service has it among its inbound_secrets
    secret_from_service: SecretStr | None = None  # the service's outbound_secret
    # gmbank
    app_id: str | None = None
    bank_private_key_hex: SecretStr | None = None
    service_public_key_hex: str | None = None

    @field_validator("bank_private_key_pem")
    @classmethod
    def _rsa_private(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check(signatures.check_rsa_private_pem, value.get_secret_value(), "RSA private key")
        return value

    @field_validator("service_public_key_pem")
    @classmethod
    def _rsa_public(cls, value: str | None) -> str | None:
        if value is not None:
            _check(signatures.check_rsa_public_pem, value, "RSA public key")
        return value

    @field_validator("bank_private_key_hex")
    @classmethod
    def _sm2_private(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check(signatures.check_sm2_private_hex, value.get_secret_value(), "SM2 private key")
        return value

    @field_validator("service_public_key_hex")
    @classmethod
    def _sm2_public(cls, value: str | None) -> str | None:
        if value is not None:
            _check(signatures.check_sm2_public_hex, value, "SM2 public key")
        return value

    @model_validator(mode="after")
    def _adapter_keys(self) -> Self:
        missing = [name for name in _REQUIRED[self.adapter] if getattr(self, name) in (None, "")]
        if missing:
            raise ValueError(f"adapter {self.adapter} needs {', '.join(missing)}")
        return self

    def secret(self, name: str) -> str:
        """A required secret of this bank's adapter (present: the model validator saw to it)."""
        value = getattr(self, name)
        assert isinstance(value, SecretStr), name
        return value.get_secret_value()

    def value(self, name: str) -> str:
        """A required non-secret setting of this bank's adapter."""
        value = getattr(self, name)
        assert isinstance(value, str), name
        return value


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_url: str  # e.g. http://127.0.0.1:8000; notifications go to {service_url}/v1/banks/...
    banks: list[SimBank]
    # A bank resends until it reads its success reply; these bound how hard the simulator tries.
    delivery_retries: int = Field(default=3, ge=0, le=10)
    delivery_backoff_seconds: float = Field(default=0.2, ge=0, le=10)
    delivery_timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _unique_slugs(self) -> Self:
        slugs = [bank.slug for bank in self.banks]
        if len(slugs) != len(set(slugs)):
            raise ValueError("bank slugs must be unique")
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> "SimulatorConfig":
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def _check(check: Callable[[str], None], value: str, what: str) -> None:
    try:
        check(value)
    except Exception as error:  # any load failure is a bad key, whatever the library raises
        raise ValueError(f"not a valid {what}") from error
