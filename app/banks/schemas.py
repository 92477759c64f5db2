from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.kit.clock import Timestamp

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
AdapterName = Literal["ums", "iso20022", "gmbank"]


class BankPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter: AdapterName = Field(description="Which bank interface this bank speaks (`../banks/`).")
    base_url: str = Field(
        pattern=r"^https?://[^\s]+$",
        max_length=500,
        description="Where instructions and queries are sent, e.g. `https://bank.example/escrow`.",
    )
    config: dict[str, Any] = Field(
        description=(
            "The adapter's keys and ids, named as in its spec: ums `md5_key`, `group_id`, "
            "`private_key_pem`, `bank_public_key_pem`; iso20022 `inbound_secrets`, "
            "`outbound_secret`; gmbank `app_id`, `private_key_hex`, `bank_public_key_hex`. Inbound "
            "credentials may be lists, so a bank can rotate keys. Stored sealed; never returned."
        )
    )


class BankOut(BaseModel):
    slug: str
    adapter: AdapterName
    base_url: str
    configured: list[str] = Field(
        description="The config fields that are set (never their values)."
    )
    updated_at: Timestamp
