from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, Field

from app.balances.rules import Figures
from app.kit.clock import Timestamp
from app.models import Institution


class BalanceView(BaseModel):
    institution_id: UUID
    ledger_balance_fen: int = Field(description="Escrow cash in the ledger.")
    bank_balance_fen: int | None = Field(description="The bank's last reported escrow balance.")
    bank_balance_as_of: Timestamp | None = Field(
        description="The moment the bank's balance stood at (its statement's cut-off)."
    )
    balance_fen: int = Field(
        description="B: the lower of the ledger's and the bank's balance (the ledger's alone until "
        "the bank has reported one)."
    )
    unconsumed_fen: int = Field(
        description="U: paid, not yet released (pending and disputed included)."
    )
    holdback_fen: int = Field(
        description="H: hold-back, `holdback_pct` of each receipt of the last `holdback_months`, "
        "each rounded up to the fen."
    )
    floor_fen: int = Field(description="F: the minimum balance floor.")
    required_fen: int = Field(description="R = U + H + F.")
    releasable_fen: int = Field(
        description="Released lesson money payable now (past the T+lag): what the institution has "
        "earned. Not all of it may leave now: see `payout_allowance_fen`."
    )
    in_transit_fen: int = Field(description="Payouts and refunds sent, result not yet known.")
    suspense_fen: int = Field(description="Money at the bank matching no order.")
    headroom_fen: int = Field(description="B - in transit - suspense - R.")
    month_payouts_fen: int = Field(
        description="This calendar month's payouts (Asia/Shanghai), less failed and returned ones."
    )
    monthly_cap_left_fen: int | None = Field(
        description="`monthly_payout_cap_floor_multiple` * F less this month's payouts; null when "
        "the jurisdiction sets no monthly cap."
    )
    payout_allowance_fen: int = Field(
        description="The largest payout the rule allows now: the least of `releasable_fen`, "
        "`headroom_fen` and `monthly_cap_left_fen`, and never below 0. A payout asked for without "
        "an amount pays this; when it is 0 a payout is refused (`nothing_releasable`, or "
        "`monthly_cap_reached` when the month's cap is what is used up)."
    )
    coverage_ratio: Decimal | None = Field(
        description="B / R as a decimal string rounded half-up to 4 places; null when R is 0."
    )
    alert_level: str = Field(description="GREEN, YELLOW, RED or FROZEN (at `as_of`, if asked).")

    @classmethod
    def of(
        cls,
        institution: Institution,
        figures: Figures,
        *,
        bank_balance_as_of: datetime | None,
        alert_level: str,
    ) -> "BalanceView":
        return cls(
            institution_id=institution.id,
            bank_balance_as_of=bank_balance_as_of,
            coverage_ratio=figures.coverage_ratio,
            alert_level=alert_level,
            **figures.named(),
        )
