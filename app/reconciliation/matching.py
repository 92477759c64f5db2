"""Matching one escrow account's daily statement against the ledger's movements of that account.

Pure: no I/O, no database, no clock. The service feeds it the statement's lines as they stream in,
records what it returns, and hands it the grace cut-off at the end.

Each line ends matched or as exactly one typed break, each movement is used at most once. The
rules apply in order across all lines, so the work runs in passes:

1. `Matcher.first_pass`, one line at a time as the file streams: by the bank's serial (the one its
   notification or result carried), then by reference (order number or instruction id) and
   amount. A line no rule settles yet is kept; only those are held in memory.
2. `Matcher.finish`: the reference rule for the lines it had to wait for (every line has had its
   serial chance by then), the amount-within-a-window rule for the lines left that quote no
   reference, then every line left is a break and every movement left is missing at the bank, or
   pending when it is too young.
3. `balance_breaks`: the statement's roll-forward and its closing against the ledger.
"""

import bisect
import heapq
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from app.banks.protocol import Direction, StatementLine, StatementSummary
from app.instructions.service import PREFIXES
from app.models.reconciliation import BreakType
from app.payments.service import MAX_ORDER_NO_LENGTH


class MovementKind(StrEnum):
    payment = "payment"
    payout = "payout"
    refund = "refund"
    returned = "returned"  # the money of a payout or refund, come back (退票)


DIRECTION_OF_KIND = {
    MovementKind.payment: Direction.credit,
    MovementKind.returned: Direction.credit,
    MovementKind.payout: Direction.debit,
    MovementKind.refund: Direction.debit,
}


class Movement(NamedTuple):
    """One ledger movement of the escrow account that the bank should list. A tuple: a busy day
    makes a million, and a tuple is made in a third of a frozen dataclass's time and, holding
    no container, is soon left alone by the cyclic collector."""

    id: str  # stable: the instruction id, or the ledger entry key of a payment
    kind: MovementKind
    direction: Direction
    amount_fen: int
    at: datetime  # aware: a payment's paid_at (the bank's), an instruction's sent_at
    bank_reference: str | None  # the serial the bank's notification or result carried
    reference: str | None  # a payment's order number; our instruction id for the others

    @property
    def signed_fen(self) -> int:
        return signed(self.amount_fen, self.direction)


class MatchRule(StrEnum):
    serial = "serial"
    reference = "reference"
    window = "window"


class Match(NamedTuple):  # a tuple, for it is made for nearly every line
    line_number: int
    bank_reference: str
    movement_id: str
    rule: MatchRule
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Break:
    """A difference between the bank and the ledger. `expected_fen` is what the ledger (or the
    roll-forward) says, `actual_fen` what the bank says; either is None when that side has none."""

    type: BreakType
    detail: str
    line_number: int | None = None
    bank_reference: str | None = None
    movement_id: str | None = None
    expected_fen: int | None = None
    actual_fen: int | None = None
    # missing_in_ledger: the order number the credit quotes, when it looks like one (the service
    # credits that enrollment); None sends the money to suspense.
    order_no: str | None = None
    # returned: the payout or refund whose money came back (None when the bank names none);
    # duplicate: the instruction the bank executed twice.
    instruction_id: str | None = None
    # Which way the money went on the side that has it (the bank's line, else the ledger's).
    direction: Direction | None = None
    line: StatementLine | None = None  # the statement's line, when the break is of one

    @property
    def signed_fen(self) -> int:
        """The amount the side that has it moved, credits positive (the bank's, when both)."""
        return signed(
            self.actual_fen if self.actual_fen is not None else self.expected_fen, self.direction
        )

    @property
    def expected_signed_fen(self) -> int:
        """The ledger's amount, credits positive."""
        return signed(self.expected_fen, self.direction)


def signed(amount_fen: int | None, direction: Direction | None) -> int:
    """An amount with its direction's sign, credits positive; 0 when either is unknown."""
    if amount_fen is None or direction is None:
        return 0
    return amount_fen if direction is Direction.credit else -amount_fen


Outcome = Match | Break


@dataclass(frozen=True, slots=True)
class Result:
    """What `finish` decided: matches and breaks of the lines it was left with and of the
    movements no line claimed; `pending` are the movements too young to be missing yet."""

    matches: list[Match]
    breaks: list[Break]
    pending: list[Movement]


def looks_like_instruction_id(reference: str | None) -> bool:
    """Whether the reference has the shape of our payout or refund ids (a prefix and 30 hex)."""
    return (
        reference is not None
        and len(reference) == 32
        and reference[:2] in PREFIXES.values()
        and all(c in "0123456789abcdef" for c in reference[2:])
    )


def looks_like_order_no(reference: str | None) -> bool:
    """Whether a credit's reference could be one of our order numbers (the service looks it up)."""
    return (
        reference is not None
        and 0 < len(reference) <= MAX_ORDER_NO_LENGTH
        and not looks_like_instruction_id(reference)
    )


def is_return(line: StatementLine) -> bool:
    """A credit giving back a payout or refund: the bank says so, or it quotes our instruction."""
    return line.direction is Direction.credit and (
        line.returned or looks_like_instruction_id(line.reference)
    )


def _family(direction: Direction, returned: bool, amount_fen: int) -> tuple[Direction, bool, int]:
    """What a line and a movement must share to match by amount: a return matches only a return."""
    return direction, returned, amount_fen


class Matcher:
    """Matches one statement against the movements given. Movement ids and bank serials must be
    unique among the movements (ValueError otherwise): each names one movement."""

    def __init__(self, movements: Iterable[Movement], *, window: timedelta) -> None:
        self._window = window
        self._open: dict[str, Movement] = {}  # by id, until a line claims it
        self._by_serial: dict[str, Movement] = {}
        # By reference and direction: the first movement quoting it, and the rare others (an order
        # paid twice) apart, to spare a list per movement.
        self._by_reference: dict[Direction, dict[str, Movement]] = {d: {} for d in Direction}
        self._more_by_reference: dict[tuple[str, Direction], list[Movement]] = defaultdict(list)
        # Serials of the lines read that no movement's serial claimed (those are in _by_serial).
        self._seen_serials: set[str] = set()
        self._kept: list[StatementLine] = []
        movements = list(movements)
        # A day is a million movements: each index is made in one comprehension, and a clash
        # (an id or a serial given twice) is found by the sizes, then named.
        wrong = next((m for m in movements if DIRECTION_OF_KIND[m.kind] is not m.direction), None)
        if wrong is not None:
            raise ValueError(f"movement {wrong.id}: a {wrong.kind} is never a {wrong.direction}")
        self._open = {m.id: m for m in movements}
        if len(self._open) != len(movements):
            raise ValueError(f"movement {_first_repeated(m.id for m in movements)} given twice")
        self._by_serial = {serial: m for m in movements if (serial := m.bank_reference) is not None}
        if len(self._by_serial) != sum(m.bank_reference is not None for m in movements):
            serial = _first_repeated(m.bank_reference for m in movements if m.bank_reference)
            raise ValueError(f"bank serial {serial} on two movements")
        for movement in movements:
            if movement.reference is not None:
                first = self._by_reference[movement.direction].setdefault(
                    movement.reference, movement
                )
                if first is not movement:
                    self._more_by_reference[movement.reference, movement.direction].append(movement)

    def take(
        self, lines: Iterable[StatementLine], watched: set[str]
    ) -> tuple[list[Break], set[str]]:
        """`first_pass` over every line, as the service streams them, returning the breaks and
        which of the `watched` movements a line matched. A line matching its movement by serial
        and amount, nearly every line of a busy day, is settled here without a `Match` made."""
        breaks: list[Break] = []
        listed: set[str] = set()
        by_serial, still_open = self._by_serial, self._open
        for line in lines:
            movement = by_serial.get(line.bank_reference)
            if (
                movement is not None
                and movement.direction is line.direction
                and movement.amount_fen == line.amount_fen
                and movement.id in still_open
            ):
                del still_open[movement.id]
                if movement.id in watched:
                    listed.add(movement.id)
                continue
            outcome = self.first_pass(line)
            if isinstance(outcome, Break):
                breaks.append(outcome)
            elif outcome is not None and outcome.movement_id in watched:
                listed.add(outcome.movement_id)
        return breaks, listed

    def first_pass(self, line: StatementLine) -> Outcome | None:
        """The line's outcome by serial or by reference, or None: kept for `finish`."""
        serial = line.bank_reference
        movement = self._by_serial.get(serial)
        if movement is not None and movement.direction is line.direction:
            # Only the line with its serial claims such a movement before `finish`.
            if movement.id in self._open:
                return self._claim(line, movement, MatchRule.serial)
            return _repeated_serial(line)
        if serial in self._seen_serials:
            return _repeated_serial(line)
        self._seen_serials.add(serial)
        outcome = self._by_reference_rule(line, final=False)
        if outcome is None:
            self._kept.append(line)
        return outcome

    def finish(self, *, grace_cutoff: datetime) -> Result:
        """Settle the kept lines and the unclaimed movements. A movement recorded before
        `grace_cutoff` that no line claims is missing at the bank; a younger one is pending."""
        matches: list[Match] = []
        breaks: list[Break] = []
        left: list[StatementLine] = []
        for line in self._kept:
            outcome = self._by_reference_rule(line, final=True)
            if outcome is None:
                left.append(line)
            else:
                _sort_into(outcome, matches, breaks)
        self._kept = []
        # A line that quotes a reference says which movement it is, and the ledger has none (or no
        # more) of it: matching it to another movement of the same amount would hide a debit
        # that is none of ours, or a second payment of an order. Only lines quoting nothing are
        # matched by amount.
        by_window = self._window_rule([line for line in left if line.reference is None])
        matches.extend(by_window)
        claimed = {match.line_number for match in by_window}
        returned_instructions: set[str] = set()
        for line in left:
            if line.number not in claimed:
                breaks.append(_unmatched_line(line, returned_instructions))
        pending = []
        for movement in sorted(self._open.values(), key=lambda m: (m.at, m.id)):
            if movement.at < grace_cutoff:
                breaks.append(_missing_at_bank(movement))
            else:
                pending.append(movement)
        self._open = {}
        return Result(matches, breaks, pending)

    def _claim(self, line: StatementLine, movement: Movement, rule: MatchRule) -> Outcome:
        """The line takes the movement: matched when the amounts agree, else an amount mismatch
        that uses both up (the ledger's record of the movement needs correcting, not a twin)."""
        del self._open[movement.id]
        if movement.amount_fen == line.amount_fen:
            return Match(line.number, line.bank_reference, movement.id, rule, line.amount_fen)
        return Break(
            BreakType.amount_mismatch,
            f"line {line.number} ({line.bank_reference}) is {line.amount_fen} fen; the ledger's "
            f"{movement.kind} {movement.id} it matches by {rule} is {movement.amount_fen} fen",
            line.number,
            line.bank_reference,
            movement.id,
            expected_fen=movement.amount_fen,
            actual_fen=line.amount_fen,
            direction=line.direction,
            line=line,
        )

    def _by_reference_rule(self, line: StatementLine, *, final: bool) -> Outcome | None:
        """Same reference and direction: the open movement of the same amount (else an amount
        mismatch with the nearest in time). Before `final`, a movement whose bank serial is known
        is left alone: the line carrying that serial may still come."""
        if line.reference is None:
            return None
        first = self._by_reference[line.direction].get(line.reference)
        if first is None:
            return None
        more = self._more_by_reference.get((line.reference, line.direction), [])
        candidates = [m for m in (first, *more) if m.id in self._open]
        if not candidates:
            # Every movement quoting this reference is claimed. A payment's order may well be paid
            # twice (the second credit is missing in the ledger), but an instruction executes once.
            if line.direction is Direction.debit or is_return(line):
                return _line_break(
                    BreakType.duplicate,
                    line,
                    f"line {line.number} ({line.bank_reference}) is a second execution of "
                    f"instruction {line.reference}, already matched to another line",
                    instruction_id=line.reference,
                )
            return None
        if not final and any(m.bank_reference is not None for m in candidates):
            return None
        same_amount = [m for m in candidates if m.amount_fen == line.amount_fen]
        nearest = min(same_amount or candidates, key=lambda m: (abs(m.at - line.booked_at), m.id))
        return self._claim(line, nearest, MatchRule.reference)

    def _window_rule(self, lines: list[StatementLine]) -> list[Match]:
        """Same direction and amount, booked within the window of the movement's time. The
        nearest pair in time is matched first, whatever the lines' order; ties go to the lower
        movement id, then the lower line number. Each line waits in a heap with its nearest open
        movement, and looks further out only when another line took that one."""
        if not lines:
            return []
        by_family: dict[tuple[Direction, bool, int], list[tuple[datetime, str]]]
        by_family = defaultdict(list)
        for movement in self._open.values():
            returned = movement.kind is MovementKind.returned
            by_family[_family(movement.direction, returned, movement.amount_fen)].append(
                (movement.at, movement.id)
            )
        groups = {family: _Instants(times) for family, times in by_family.items()}
        waiting: list[tuple[timedelta, str, int, int, _Cursor]] = []
        for line in lines:
            group = groups.get(_family(line.direction, is_return(line), line.amount_fen))
            if group is not None:
                cursor = group.cursor(line.booked_at)
                self._wait(waiting, line.number, group.nearest(cursor, self._window), cursor)
        by_number = {line.number: line for line in lines}
        matches = []
        while waiting:
            _, movement_id, number, instant, cursor = heapq.heappop(waiting)
            group = cursor.group
            if not group.take(instant, movement_id):  # another line took it: look further out
                self._wait(waiting, number, group.nearest(cursor, self._window), cursor)
                continue
            del self._open[movement_id]
            line = by_number[number]
            matches.append(
                Match(number, line.bank_reference, movement_id, MatchRule.window, line.amount_fen)
            )
        return matches

    @staticmethod
    def _wait(
        waiting: list[tuple[timedelta, str, int, int, "_Cursor"]],
        number: int,
        nearest: tuple[timedelta, str, int] | None,
        cursor: "_Cursor",
    ) -> None:
        if nearest is not None:
            distance, movement_id, instant = nearest
            heapq.heappush(waiting, (distance, movement_id, number, instant, cursor))


class _Instants:
    """The open movements of one direction, kind of money (a return or not) and amount, by the
    instant they were recorded. At one instant the lowest id is always the one taken first (it is
    everyone's tie-break), so each instant needs only a count of those taken."""

    def __init__(self, times: list[tuple[datetime, str]]) -> None:
        times.sort()
        self.instants: list[datetime] = []
        self.ids: list[list[str]] = []
        for at, movement_id in times:
            if not self.instants or self.instants[-1] != at:
                self.instants.append(at)
                self.ids.append([])
            self.ids[-1].append(movement_id)
        self.taken = [0] * len(self.instants)

    def cursor(self, at: datetime) -> "_Cursor":
        right = bisect.bisect_left(self.instants, at)
        return _Cursor(self, at, right - 1, right)

    def nearest(self, cursor: "_Cursor", window: timedelta) -> tuple[timedelta, str, int] | None:
        """The nearest open movement within the window of the cursor's time: (distance, id, the
        instant's index); the cursor moves past instants whose movements are all taken."""
        while cursor.left >= 0 and self._used_up(cursor.left):
            cursor.left -= 1
        while cursor.right < len(self.instants) and self._used_up(cursor.right):
            cursor.right += 1
        sides = []
        if cursor.left >= 0:
            sides.append((cursor.at - self.instants[cursor.left], cursor.left))
        if cursor.right < len(self.instants):
            sides.append((self.instants[cursor.right] - cursor.at, cursor.right))
        found = [
            (distance, self.ids[instant][self.taken[instant]], instant)
            for distance, instant in sides
            if distance <= window
        ]
        return min(found) if found else None

    def take(self, instant: int, movement_id: str) -> bool:
        """Take the movement if it is still open (it is then the lowest open id of its instant)."""
        if self._used_up(instant) or self.ids[instant][self.taken[instant]] != movement_id:
            return False
        self.taken[instant] += 1
        return True

    def _used_up(self, instant: int) -> bool:
        return self.taken[instant] == len(self.ids[instant])


@dataclass(slots=True, eq=False)
class _Cursor:
    """Where one line looks: the instants nearest its time still worth looking at, each side."""

    group: _Instants
    at: datetime
    left: int
    right: int


def _first_repeated(values: Iterable[str | None]) -> str | None:
    seen: set[str | None] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def _unmatched_line(line: StatementLine, returned_instructions: set[str]) -> Break:
    """The break of a line no movement answers. `returned_instructions` collects the instructions
    already reported returned, so that their money is put back once."""
    if line.direction is Direction.debit:
        return _line_break(
            BreakType.unauthorized_debit,
            line,
            f"line {line.number} ({line.bank_reference}) takes {line.amount_fen} fen out of the "
            f"escrow account, and none of our instructions asked for it"
            + (f" (it quotes {line.reference})" if line.reference else ""),
        )
    if is_return(line):
        if line.reference is not None and line.reference in returned_instructions:
            return _line_break(
                BreakType.duplicate,
                line,
                f"line {line.number} ({line.bank_reference}) returns instruction "
                f"{line.reference} again: its money came back on an earlier line",
                instruction_id=line.reference,
            )
        if line.reference is not None:
            returned_instructions.add(line.reference)
        return _line_break(
            BreakType.returned,
            line,
            f"line {line.number} ({line.bank_reference}) brings back {line.amount_fen} fen of "
            + (
                f"instruction {line.reference}"
                if line.reference
                else "an instruction it does not name"
            )
            + ", and the ledger has not recorded the return",
            instruction_id=line.reference,
        )
    order_no = line.reference if looks_like_order_no(line.reference) else None
    return _line_break(
        BreakType.missing_in_ledger,
        line,
        f"line {line.number} ({line.bank_reference}) credits {line.amount_fen} fen the ledger "
        "never heard of: "
        + (f"it quotes order {order_no}" if order_no else "it quotes no order number of ours"),
        order_no=order_no,
    )


def _repeated_serial(line: StatementLine) -> Break:
    return _line_break(
        BreakType.duplicate,
        line,
        f"line {line.number} repeats the bank serial {line.bank_reference} of an earlier "
        "line: the bank listed one movement twice",
    )


def _line_break(
    type: BreakType,
    line: StatementLine,
    detail: str,
    *,
    order_no: str | None = None,
    instruction_id: str | None = None,
) -> Break:
    return Break(
        type,
        detail,
        line.number,
        line.bank_reference,
        actual_fen=line.amount_fen,
        order_no=order_no,
        instruction_id=instruction_id,
        direction=line.direction,
        line=line,
    )


def _sort_into(outcome: Outcome, matches: list[Match], breaks: list[Break]) -> None:
    if isinstance(outcome, Match):
        matches.append(outcome)
    else:
        breaks.append(outcome)


def _missing_at_bank(movement: Movement) -> Break:
    return Break(
        BreakType.missing_at_bank,
        f"the ledger's {movement.kind} {movement.id} of {movement.amount_fen} fen, recorded at "
        f"{movement.at.isoformat()}, is on no line of the statement",
        movement_id=movement.id,
        bank_reference=movement.bank_reference,
        expected_fen=movement.amount_fen,
        direction=movement.direction,
    )


def balance_breaks(summary: StatementSummary, ledger_fen: int, explained_fen: int) -> list[Break]:
    """The statement's own roll-forward (opening + credits - debits = closing), and its closing
    against the ledger's escrow balance at the cut-off, `ledger_fen`, once the differences the
    other breaks itemise (`explained_fen`: what the bank holds that the ledger does not, less what
    the ledger holds that the bank does not) are allowed for: a difference none of them explains.
    A statement that does not add up is reported once, unless its own figure disagrees too."""
    breaks = []
    rolled = summary.opening_fen + summary.credits_fen - summary.debits_fen
    if rolled != summary.closing_fen:
        breaks.append(
            Break(
                BreakType.balance_mismatch,
                f"the statement does not add up: opening {summary.opening_fen} + credits "
                f"{summary.credits_fen} - debits {summary.debits_fen} = {rolled} fen, but it "
                f"closes at {summary.closing_fen} fen",
                expected_fen=rolled,
                actual_fen=summary.closing_fen,
            )
        )
    expected = ledger_fen + explained_fen
    if expected != summary.closing_fen and (rolled == summary.closing_fen or expected != rolled):
        breaks.append(
            Break(
                BreakType.balance_mismatch,
                f"the bank closes the day at {summary.closing_fen} fen; the ledger's escrow "
                f"balance at the cut-off is {ledger_fen} fen"
                + (
                    f", {expected} fen with the differences itemised by the other breaks"
                    if explained_fen
                    else ""
                )
                + f": {summary.closing_fen - expected} fen that no line explains",
                expected_fen=expected,
                actual_fen=summary.closing_fen,
            )
        )
    return breaks


def match_statement(
    movements: Iterable[Movement],
    lines: Iterable[StatementLine],
    *,
    window: timedelta,
    grace_cutoff: datetime,
) -> Result:
    """Every pass at once, the outcomes of all lines collected (for a statement that fits in
    memory as outcomes; the service streams `first_pass` itself)."""
    matcher = Matcher(movements, window=window)
    matches: list[Match] = []
    breaks: list[Break] = []
    for line in lines:
        outcome = matcher.first_pass(line)
        if outcome is not None:
            _sort_into(outcome, matches, breaks)
    rest = matcher.finish(grace_cutoff=grace_cutoff)
    return Result(matches + rest.matches, breaks + rest.breaks, rest.pending)
