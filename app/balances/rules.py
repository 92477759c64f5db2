"""The minimum-balance rule of DOMAIN.md (rule 8), as pure arithmetic on fen.

U  unconsumed: paid by students, not yet released (pending and disputed lessons included)
H  hold-back:  holdback_pct of each receipt of the last holdback_months
F  floor:      max(min_balance_floor_fen, ceil(min_balance_pct_of_unconsumed% of U))
R = U + H + F
B  the lower of the ledger's escrow balance and the bank's last reported one
a payout x is allowed when x <= releasable and B - in_transit - suspense - x >= R,
and, with monthly_payout_cap_floor_multiple m, when this month's payouts + x <= m * F.
"""

from dataclasses import dataclass


def ceil_percent(percent: int, amount_fen: int) -> int:
    """ceil(percent% of amount), exactly, in integers."""
    return -(-percent * amount_fen // 100)


@dataclass(frozen=True, slots=True)
class Figures:
    ledger_balance_fen: int
    bank_balance_fen: int | None
    unconsumed_fen: int
    holdback_fen: int
    floor_fen: int
    releasable_fen: int  # payable now: released, and past the release lag
    in_transit_fen: int
    suspense_fen: int
    month_payouts_fen: int
    monthly_cap_multiple: int | None

    @property
    def balance_fen(self) -> int:
        """B: the bank's figure counts when it is lower (money may have left without us)."""
        if self.bank_balance_fen is None:
            return self.ledger_balance_fen
        return min(self.ledger_balance_fen, self.bank_balance_fen)

    @property
    def required_fen(self) -> int:
        return self.unconsumed_fen + self.holdback_fen + self.floor_fen

    @property
    def headroom_fen(self) -> int:
        """How much may leave before the balance would fall below R."""
        return self.balance_fen - self.in_transit_fen - self.suspense_fen - self.required_fen

    @property
    def monthly_cap_left_fen(self) -> int | None:
        if self.monthly_cap_multiple is None:
            return None
        return self.monthly_cap_multiple * self.floor_fen - self.month_payouts_fen

    @property
    def payout_allowance_fen(self) -> int:
        """The largest payout the rule allows now (0 or more)."""
        limits = [self.releasable_fen, self.headroom_fen]
        if self.monthly_cap_left_fen is not None:
            limits.append(self.monthly_cap_left_fen)
        return max(0, min(limits))


def floor_fen(min_balance_floor_fen: int, pct_of_unconsumed: int, unconsumed_fen: int) -> int:
    return max(min_balance_floor_fen, ceil_percent(pct_of_unconsumed, unconsumed_fen))
