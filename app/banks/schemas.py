from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.kit.clock import Timestamp
from app.kit.pagination import Page
from app.models import BankMessage
from app.models.bank_message import MessageStatus

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
AdapterName = Literal["ums", "iso20022", "gmbank"]


class StatementSettings(BaseModel):
    """How reconciliation treats this bank's statements (each has a default)."""

    model_config = ConfigDict(extra="forbid")

    grace_minutes: int = Field(
        default=120,
        ge=0,
        le=1440,
        description=(
            "How long after we record a movement the bank may take to book it: one that young at "
            "a statement's cut-off is carried to the next statement instead of being missing at "
            "the bank."
        ),
    )
    statement_days: Literal["daily", "workdays"] = Field(
        default="daily",
        description=(
            "The days the bank owes a statement of each escrow account: every day, or working "
            "days as the State Council's calendar has them (调休 included)."
        ),
    )
    due_hours: int = Field(
        default=12,
        ge=0,
        le=168,
        description=(
            "Hours after its day ends by which a statement must have come; later, the day has a "
            "`statement_missing` break."
        ),
    )


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
    statements: StatementSettings = Field(
        default_factory=StatementSettings,
        description="Reconciliation settings for the bank's statements; defaults when absent.",
    )


class BankOut(BaseModel):
    slug: str
    adapter: AdapterName
    base_url: str
    configured: list[str] = Field(
        description="The config fields that are set (never their values)."
    )
    statements: StatementSettings
    updated_at: Timestamp


class BankMessageOut(BaseModel):
    """A message as the inbox stored it; its raw body stays in the database, as evidence."""

    id: UUID
    message_id: str | None = Field(
        description="The bank's id of the message; null when it could not be trusted or read."
    )
    status: MessageStatus = Field(
        description=(
            "`stored` (a payment acknowledged and not yet credited: the inbox's worker credits "
            "it within moments); `processed`; `failed` (applying it failed: `process_inbox` "
            "retries, see `detail`); "
            "`malformed` (verified but unreadable); `rejected` (failed its signature check)."
        )
    )
    verification: str = Field(description="`ok`, or what was wrong with the signature.")
    detail: str | None
    events: int = Field(description="Events read from it (payments, results, notices).")
    attempts: int = Field(description="Times its events were applied, or tried.")
    content_type: str
    body_bytes: int
    received_at: Timestamp
    processed_at: Timestamp | None

    @classmethod
    def of(cls, message: BankMessage) -> "BankMessageOut":
        return cls(
            id=message.id,
            message_id=message.message_id,
            status=MessageStatus(message.status),
            verification=message.verification,
            detail=message.detail,
            events=message.events,
            attempts=message.attempts,
            content_type=message.content_type,
            body_bytes=len(message.body),
            received_at=message.received_at,
            processed_at=message.processed_at,
        )


class BankMessagePage(Page[BankMessageOut]):
    pass
