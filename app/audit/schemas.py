from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from app.audit.chain import PLATFORM_CHAIN
from app.audit.service import AuditVerification


class ActorOut(BaseModel):
    role: str = Field(
        description="The key's role (`admin`, `regulator`, `institution`, `parent`, `bank`), or "
        "`bank` for a bank's signed message, or `job` for a scheduled job."
    )
    id: str = Field(
        description="The key's id (`environment` for ADMIN_API_KEY), the bank's slug or the job's "
        "name; `unknown` for a journal entry posted before the audit trail existed."
    )


class AuditItem(BaseModel):
    id: str = Field(description="`<source>:<chain>:<seq>`, unique in the trail.")
    source: str = Field(
        description="`action` (a regulator's or operator's) or `money` (a journal entry)"
    )
    seq: int = Field(
        description="The record's place in its chain (the institution's journal seq for money)."
    )
    at: datetime
    actor: ActorOut
    action: str = Field(description="e.g. `institution.freeze`; money: `money.<entry kind>`.")
    object_type: str | None
    object_id: str | None
    institution_id: UUID | None = Field(description="None: an action about no institution.")
    address: str | None = Field(description="The client address the action came from.")
    details: dict[str, Any] | None = Field(
        description="What the action said (a reason, amounts in fen); for money `amount_fen` "
        "(the entry's total debit side) and `memo`."
    )

    @classmethod
    def of(cls, row: Any) -> "AuditItem":
        chain = None if row.institution_id == PLATFORM_CHAIN else row.institution_id
        details = row.details
        if row.source == "money":
            details = {"amount_fen": int(row.amount_fen or 0), "memo": row.memo}
        return cls(
            id=f"{row.source}:{row.institution_id}:{row.seq}",
            source=row.source,
            seq=row.seq,
            at=row.at,
            actor=ActorOut(role=row.actor_role or "unknown", id=row.actor_id or "unknown"),
            action=row.action,
            object_type=row.object_type,
            object_id=row.object_id,
            institution_id=chain,
            address=row.address,
            details=details,
        )


class AuditPage(BaseModel):
    items: list[AuditItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class AuditVerificationOut(BaseModel):
    intact: bool
    chains_checked: int
    records_checked: int
    institution_id: UUID | None = Field(
        description="The first broken chain's institution (null: the platform's chain, or intact)."
    )
    first_bad_seq: int | None = Field(description="The first record found wrong in it.")
    verified_through_seq: int | None = Field(description="Its chain is intact up to this record.")
    problem: str | None

    @classmethod
    def of(cls, report: AuditVerification) -> "AuditVerificationOut":
        return cls(
            intact=report.intact,
            chains_checked=report.chains_checked,
            records_checked=report.records_checked,
            institution_id=report.institution_id,
            first_bad_seq=report.first_bad_seq,
            verified_through_seq=report.verified_through_seq,
            problem=report.problem,
        )
