from decimal import ROUND_DOWN, Decimal
from uuid import UUID

from pydantic import BaseModel, Field

from app.balances.rules import Figures
from app.kit.clock import Timestamp
from app.models import Institution


class BalanceView(BaseModel):
    institution_id: UUID
    ledger_balance_fen: int = Field(description="Escrow cash in the ledger.")
    bank_balance_fen: int | None = Field(description="The bank's last reported escrow balance.")
    bank_balance_as_of: Timestamp | None
    unconsumed_fen: int = Field(
        description="U: paid, not yet released (pending and disputed included)."
    )
    holdback_fen: int = Field(description="H: hold-back on recent receipts.")
    floor_fen: int = Field(description="F: the minimum balance floor.")
    required_fen: int = Field(description="R = U + H + F.")
    releasable_fen: int = Field(description="Released lesson money payable now (past the T+lag).")
    in_transit_fen: int = Field(description="Payouts and refunds sent, result not yet known.")
    suspense_fen: int = Field(description="Money at the bank matching no order.")
    headroom_fen: int = Field(
        description="B - in transit - suspense - R, with B the lower of ledger and bank balance."
    )
    payout_allowance_fen: int = Field(description="The largest payout the rule allows now.")
    coverage_ratio: Decimal | None = Field(
        description="B / R to 4 decimal places, as a string; null when R is 0."
    )
    alert_level: str

    @classmethod
    def of(cls, institution: Institution, figures: Figures) -> "BalanceView":
        ratio = None
        if figures.required_fen > 0:
            ratio = (Decimal(figures.balance_fen) / Decimal(figures.required_fen)).quantize(
                Decimal("0.0001"), rounding=ROUND_DOWN
            )
        return cls(
            institution_id=institution.id,
            ledger_balance_fen=figures.ledger_balance_fen,
            bank_balance_fen=figures.bank_balance_fen,
            bank_balance_as_of=institution.bank_balance_as_of,
            unconsumed_fen=figures.unconsumed_fen,
            holdback_fen=figures.holdback_fen,
            floor_fen=figures.floor_fen,
            required_fen=figures.required_fen,
            releasable_fen=figures.releasable_fen,
            in_transit_fen=figures.in_transit_fen,
            suspense_fen=figures.suspense_fen,
            headroom_fen=figures.headroom_fen,
            payout_allowance_fen=figures.payout_allowance_fen,
            coverage_ratio=ratio,
            alert_level=institution.alert_level,
        )
