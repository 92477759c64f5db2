"""The minimum-balance rule of DOMAIN.md (rule 8), as pure arithmetic on fen.

U  unconsumed: paid by students, not yet released (pending and disputed lessons included)
H  hold-back:  ceil(holdback_pct% of each receipt) of the last holdback_months, summed
F  floor:      max(min_balance_floor_fen, ceil(min_balance_pct_of_unconsumed% of U))
R = U + H + F
B  the lower of the ledger's escrow balance and the bank's last reported one
a payout x is allowed when x <= releasable and B - in_transit - suspense - x >= R,
and, with monthly_payout_cap_floor_multiple m, when this month's payouts + x <= m * F.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

RATIO_PLACES = 4


def ceil_percent(percent: int, amount_fen: int) -> int:
    """ceil(percent% of amount), exactly, in integers."""
    return -(-percent * amount_fen // 100)


def holdback_fen(holdback_pct: int, receipts: Iterable[tuple[int, int]]) -> int:
    """H: ceil(holdback_pct% of each receipt), summed. `receipts` are (amount_fen, how many
    receipts of that amount): each receipt is rounded up on its own, never the sum."""
    return sum(ceil_percent(holdback_pct, amount) * count for amount, count in receipts)


def floor_fen(min_balance_floor_fen: int, pct_of_unconsumed: int, unconsumed_fen: int) -> int:
    return max(min_balance_floor_fen, ceil_percent(pct_of_unconsumed, unconsumed_fen))


def balance_of(ledger_balance_fen: int, bank_balance_fen: int | None) -> int:
    """B: the bank's figure counts when it is lower (money may have left without us); the
    ledger's alone until the bank has reported one."""
    if bank_balance_fen is None:
        return ledger_balance_fen
    return min(ledger_balance_fen, bank_balance_fen)


def coverage_ratio(balance_fen: int, required_fen: int) -> Decimal | None:
    """B / R rounded half-up to RATIO_PLACES decimal places (API.md), computed in integers; None
    when R is 0. R is never negative (U, H and F are not); B may be, when the bank reports less
    than nothing."""
    if required_fen == 0:
        return None
    scale = 10**RATIO_PLACES
    # Half-up on the magnitude: floor(|B| * scale / R + 1/2), without leaving the integers.
    scaled = (2 * abs(balance_fen) * scale + required_fen) // (2 * required_fen)
    sign = "-" if balance_fen < 0 and scaled else ""
    return Decimal(f"{sign}{scaled // scale}.{scaled % scale:0{RATIO_PLACES}d}")


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
    month_payouts_fen: int  # this calendar month's payouts, less those failed or returned
    monthly_cap_multiple: int | None

    @property
    def balance_fen(self) -> int:
        return balance_of(self.ledger_balance_fen, self.bank_balance_fen)

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
        """The largest payout the rule allows now (0 or more): releasable money is what has been
        earned, the allowance is what of it may leave now without breaking R or the month's cap."""
        limits = [self.releasable_fen, self.headroom_fen]
        if self.monthly_cap_left_fen is not None:
            limits.append(self.monthly_cap_left_fen)
        return max(0, min(limits))

    @property
    def coverage_ratio(self) -> Decimal | None:
        return coverage_ratio(self.balance_fen, self.required_fen)

    def named(self) -> dict[str, int | None]:
        """The figures in fen by the names the balance view and a payout refusal give them."""
        return {
            "ledger_balance_fen": self.ledger_balance_fen,
            "bank_balance_fen": self.bank_balance_fen,
            "balance_fen": self.balance_fen,
            "unconsumed_fen": self.unconsumed_fen,
            "holdback_fen": self.holdback_fen,
            "floor_fen": self.floor_fen,
            "required_fen": self.required_fen,
            "releasable_fen": self.releasable_fen,
            "in_transit_fen": self.in_transit_fen,
            "suspense_fen": self.suspense_fen,
            "headroom_fen": self.headroom_fen,
            "month_payouts_fen": self.month_payouts_fen,
            "monthly_cap_left_fen": self.monthly_cap_left_fen,
            "payout_allowance_fen": self.payout_allowance_fen,
        }
