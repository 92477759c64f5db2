from datetime import date
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.kit.clock import Timestamp
from app.kit.text import Reason
from app.models import ReconciliationBreak, ReconciliationRun
from app.models.reconciliation import BreakStatus, BreakType, RunStatus


class BreakOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    type: BreakType
    status: BreakStatus
    line_number: int | None = Field(description="The statement's line (or row), when one.")
    bank_reference: str | None
    movement_id: str | None = Field(description="The ledger's side: an instruction or entry.")
    amount_fen: int | None = Field(description="What the bank says.")
    expected_fen: int | None = Field(description="What the ledger says.")
    detail: str
    opened_at: Timestamp
    opened_by: str
    closed_at: Timestamp | None
    closed_by: str | None
    close_note: str | None


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    institution_id: UUID
    bank_slug: str
    account_no: str
    statement_date: date
    status: RunStatus = Field(
        description="`clean`, or `breaks` when one was opened; `missing` when no statement came "
        "for a day the bank owes one (then no figure below is the bank's: all are 0)."
    )
    lines: int
    opening_fen: int
    closing_fen: int
    credits_fen: int
    debits_fen: int
    ledger_balance_fen: int = Field(
        description="The ledger's escrow balance at the end of the statement's day (0 on a "
        "`missing` run)."
    )
    created_at: Timestamp
    breaks: list[BreakOut]

    @classmethod
    def of(cls, run: ReconciliationRun, breaks: list[ReconciliationBreak]) -> "RunOut":
        return cls.model_validate({**_columns(run), "breaks": breaks})


class BreakItem(BreakOut):
    """A break listed across runs: with the institution and run it belongs to."""

    institution_id: UUID
    run_id: UUID


class BreakPage(BaseModel):
    items: list[BreakItem]
    next_cursor: str | None


class BreakClose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Reason = Field(description="Why the break is closed (1 to 500 characters), kept on it.")


class StatementReceived(RunOut):
    replayed: bool = Field(description="The same statement came before: this is its first run.")


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


def _columns(run: ReconciliationRun) -> dict[str, object]:
    return {name: getattr(run, name) for name in RunOut.model_fields if name != "breaks"}
