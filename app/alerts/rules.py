"""The alert engine's pure rules (DOMAIN.md, alert levels), on integers only.

- the institution's level: FROZEN while held (frozen, revoked, blacklisted), else the worst open
  alert that bears on the level, else GREEN;
- the figure triggers: shortfall (RED) when B < U, floor breach (YELLOW) when U <= B < R;
- the day's outflow share: outflows above `pct`% of the day's opening escrow balance;
- the lesson-recording spike (突击消课): a day's recorded lessons above `factor` times the trailing
  daily mean, compared as `today * days > factor * trailing` so no division is made.
"""

from collections.abc import Iterable

from app.models.alert import AlertKind
from app.models.institution import AlertLevel

# The order of severity.
RANK = {AlertLevel.green: 0, AlertLevel.yellow: 1, AlertLevel.red: 2, AlertLevel.frozen: 3}

# The trailing window of the spike's mean, and the least history that makes a mean at all: an
# institution onboarded less than a week ago, or with no lesson recorded in its window, has no
# baseline to spike above (a new course's first lessons are not 突击消课).
SPIKE_WINDOW_DAYS = 28
SPIKE_MIN_HISTORY_DAYS = 7


def worst(levels: Iterable[str]) -> AlertLevel:
    """The most severe of `levels`; GREEN when there is none."""
    return max(
        (AlertLevel(level) for level in levels), key=RANK.__getitem__, default=AlertLevel.green
    )


def settled_level(*, held: bool, open_levels: Iterable[str]) -> AlertLevel:
    """The level an institution has: FROZEN while held, else the worst of its open alerts' levels
    (those that bear on the level), else GREEN."""
    return AlertLevel.frozen if held else worst(open_levels)


def figure_trigger(balance_fen: int, unconsumed_fen: int, required_fen: int) -> AlertKind | None:
    """shortfall when B < U; floor_breach when U <= B < R; None when B >= R."""
    if balance_fen < unconsumed_fen:
        return AlertKind.shortfall
    if balance_fen < required_fen:
        return AlertKind.floor_breach
    return None


def outflow_share_exceeded(outflows_fen: int, opening_fen: int, pct: int) -> bool:
    """Whether a day's outflows are above `pct`% of its opening balance: outflows * 100 >
    pct * opening. An opening balance of 0 or less makes any outflow one above the share."""
    return outflows_fen > 0 and outflows_fen * 100 > pct * max(opening_fen, 0)


def is_spike(today: int, trailing: int, history_days: int, factor: int) -> bool:
    """Whether `today`'s recorded lessons are above `factor` times the trailing daily mean
    (`trailing` lessons over `history_days` days, at most SPIKE_WINDOW_DAYS). No baseline (fewer
    than SPIKE_MIN_HISTORY_DAYS days, or none recorded in them) is no spike."""
    if history_days < SPIKE_MIN_HISTORY_DAYS or trailing <= 0:
        return False
    return today * history_days > factor * trailing
