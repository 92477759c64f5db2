"""Matching a day's statement against the ledger (app/reconciliation/matching.py): each break type
planted once comes out once and alone, and the properties every statement keeps."""

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.banks.protocol import Direction, StatementLine, StatementSummary
from app.reconciliation.matching import (
    Break,
    BreakType,
    Match,
    Matcher,
    MatchRule,
    Movement,
    MovementKind,
    Result,
    balance_breaks,
    match_statement,
)

DAY = datetime(2026, 11, 27, tzinfo=ZoneInfo("Asia/Shanghai"))
WINDOW = timedelta(minutes=30)
AFTER_THE_DAY = DAY + timedelta(days=1)  # grace cut-off: everything of the day is old enough
ORDER = "PG" + "a" * 30
PAYOUT_ID = "PO" + "1" * 30
REFUND_ID = "RF" + "2" * 30


def movement(
    id: str,
    kind: MovementKind,
    amount_fen: int,
    minutes: int,
    *,
    serial: str | None = None,
    reference: str | None = None,
) -> Movement:
    direction = (
        Direction.credit
        if kind in (MovementKind.payment, MovementKind.returned)
        else Direction.debit
    )
    return Movement(
        id, kind, direction, amount_fen, DAY + timedelta(minutes=minutes), serial, reference
    )


def line_of(
    number: int,
    serial: str,
    direction: Direction,
    amount_fen: int,
    minutes: int,
    reference: str | None = None,
    *,
    returned: bool = False,
) -> StatementLine:
    return StatementLine(
        number,
        serial,
        DAY + timedelta(minutes=minutes),
        direction,
        amount_fen,
        reference,
        None,
        None,
        None,
        returned,
    )


# A day of one escrow account: a payment known by its serial, one known only by its order, a
# payout and a refund known by their instruction ids, and a payout returned.
LEDGER = [
    movement("E1", MovementKind.payment, 300_000, 60, serial="S1", reference=ORDER),
    movement("E2", MovementKind.payment, 150_000, 120, reference="PG" + "b" * 30),
    movement(PAYOUT_ID, MovementKind.payout, 80_000, 600, reference=PAYOUT_ID),
    movement(REFUND_ID, MovementKind.refund, 20_000, 700, reference=REFUND_ID),
    movement("R" + PAYOUT_ID, MovementKind.returned, 5_000, 800, reference="PO" + "3" * 30),
]
STATEMENT = [
    line_of(1, "S1", Direction.credit, 300_000, 61, ORDER),
    line_of(2, "S2", Direction.credit, 150_000, 121, "PG" + "b" * 30),
    line_of(3, "S3", Direction.debit, 80_000, 605, PAYOUT_ID),
    line_of(4, "S4", Direction.debit, 20_000, 705, REFUND_ID),
    line_of(5, "S5", Direction.credit, 5_000, 900, "PO" + "3" * 30, returned=True),
]


def summary_of(opening: int, credits: int, debits: int, closing: int) -> StatementSummary:
    return StatementSummary(
        account_no="6200001",
        day=DAY.date(),
        opening_fen=opening,
        closing_fen=closing,
        lines=3,
        credits_fen=credits,
        debits_fen=debits,
    )


def run(lines=STATEMENT, ledger=LEDGER, grace_cutoff=AFTER_THE_DAY) -> Result:
    return match_statement(ledger, lines, window=WINDOW, grace_cutoff=grace_cutoff)


def only_break(result: Result) -> Break:
    assert len(result.breaks) == 1, result.breaks
    assert result.pending == []
    return result.breaks[0]


def test_a_clean_day_matches_every_line_and_movement():
    result = run()
    assert result.breaks == [] and result.pending == []
    assert sorted((m.line_number, m.movement_id, m.rule) for m in result.matches) == [
        (1, "E1", MatchRule.serial),
        (2, "E2", MatchRule.reference),
        (3, PAYOUT_ID, MatchRule.reference),
        (4, REFUND_ID, MatchRule.reference),
        (5, "R" + PAYOUT_ID, MatchRule.reference),
    ]


def test_a_credit_the_ledger_never_heard_of_names_the_order_it_quotes():
    foreign = line_of(6, "S6", Direction.credit, 123_400, 1000, "PG" + "z" * 30)
    found = only_break(run([*STATEMENT, foreign]))
    assert found.type is BreakType.missing_in_ledger
    assert (found.line_number, found.bank_reference, found.actual_fen) == (6, "S6", 123_400)
    assert found.order_no == "PG" + "z" * 30  # the service credits that order's enrollment
    assert len(run([*STATEMENT, foreign]).matches) == 5


def test_a_credit_quoting_no_order_goes_to_suspense():
    for reference in (None, "x" * 40):
        found = only_break(
            run([*STATEMENT, line_of(6, "S6", Direction.credit, 999, 1000, reference)])
        )
        assert found.type is BreakType.missing_in_ledger and found.order_no is None


def test_an_instruction_the_bank_never_executed_is_missing_at_bank_once_old_enough():
    without_the_payout = [line for line in STATEMENT if line.number != 3]
    found = only_break(run(without_the_payout))
    assert found.type is BreakType.missing_at_bank
    assert (found.movement_id, found.expected_fen, found.line_number) == (PAYOUT_ID, 80_000, None)
    # Sent after the grace cut-off: not a break yet, pending.
    young = run(without_the_payout, grace_cutoff=DAY + timedelta(minutes=600))
    assert young.breaks == [] and [m.id for m in young.pending] == [PAYOUT_ID]


def test_a_line_of_another_amount_than_its_movement_is_one_amount_mismatch():
    by_serial = [replace(STATEMENT[0], amount_fen=300_001), *STATEMENT[1:]]
    found = only_break(run(by_serial))
    assert found.type is BreakType.amount_mismatch
    assert (found.line_number, found.movement_id, found.expected_fen, found.actual_fen) == (
        1,
        "E1",
        300_000,
        300_001,
    )
    by_reference = [*STATEMENT[:2], replace(STATEMENT[2], amount_fen=79_999), *STATEMENT[3:]]
    found = only_break(run(by_reference))
    assert (found.type, found.movement_id, found.actual_fen) == (
        BreakType.amount_mismatch,
        PAYOUT_ID,
        79_999,
    )


def test_a_line_listed_twice_is_one_duplicate():
    found = only_break(run([*STATEMENT, replace(STATEMENT[0], number=6)]))
    assert (found.type, found.line_number, found.bank_reference) == (BreakType.duplicate, 6, "S1")
    # A serial the ledger does not know, listed twice: one missing in the ledger, one duplicate.
    twice = [line_of(6, "S9", Direction.credit, 7, 10), line_of(7, "S9", Direction.credit, 7, 10)]
    assert sorted(b.type for b in run([*STATEMENT, *twice]).breaks) == [
        BreakType.duplicate,
        BreakType.missing_in_ledger,
    ]


def test_an_instruction_executed_twice_is_one_duplicate():
    again = line_of(6, "S6", Direction.debit, 80_000, 610, PAYOUT_ID)
    found = only_break(run([*STATEMENT, again]))
    assert (found.type, found.line_number, found.instruction_id) == (
        BreakType.duplicate,
        6,
        PAYOUT_ID,
    )


def test_money_come_back_the_ledger_has_not_recorded_is_one_returned_break_per_instruction():
    back = line_of(6, "S6", Direction.credit, 80_000, 900, PAYOUT_ID, returned=True)
    found = only_break(run([*STATEMENT, back]))
    assert (found.type, found.instruction_id, found.actual_fen) == (
        BreakType.returned,
        PAYOUT_ID,
        80_000,
    )
    # Quoting our instruction is enough to be a return, even without the bank's flag.
    quoting = replace(back, returned=False)
    assert only_break(run([*STATEMENT, quoting])).type is BreakType.returned
    # Listed twice, the money is put back once: the second is a duplicate.
    twice = run([*STATEMENT, back, replace(back, number=7, bank_reference="S7")])
    assert [(b.type, b.line_number) for b in twice.breaks] == [
        (BreakType.returned, 6),
        (BreakType.duplicate, 7),
    ]


def test_a_debit_none_of_our_instructions_asked_for_is_an_unauthorized_debit():
    stolen = line_of(6, "S6", Direction.debit, 500_000, 1300, None)
    found = only_break(run([*STATEMENT, stolen]))
    assert (found.type, found.line_number, found.actual_fen) == (
        BreakType.unauthorized_debit,
        6,
        500_000,
    )
    # Quoting an instruction id we never sent does not make it ours.
    forged = line_of(6, "S6", Direction.debit, 500_000, 1300, "PO" + "9" * 30)
    assert only_break(run([*STATEMENT, forged])).type is BreakType.unauthorized_debit


def test_a_debit_quoting_another_reference_is_never_matched_by_its_amount():
    without_the_payout = [line for line in STATEMENT if line.number != 3]
    forged = line_of(6, "S6", Direction.debit, 80_000, 601, "PO" + "9" * 30)
    result = run([*without_the_payout, forged])
    assert sorted((b.type, b.line_number, b.movement_id) for b in result.breaks) == [
        (BreakType.missing_at_bank, None, PAYOUT_ID),
        (BreakType.unauthorized_debit, 6, None),
    ]
    # Quoting nothing, the same debit is the payout, matched by its amount and time.
    result = run([*without_the_payout, replace(forged, reference=None)])
    assert result.breaks == []
    assert (6, PAYOUT_ID, MatchRule.window) in {
        (m.line_number, m.movement_id, m.rule) for m in result.matches
    }


def test_the_statement_must_roll_forward_and_close_at_the_ledger_balance():
    summary = summary_of(opening=1_000, credits=700, debits=200, closing=1_500)
    assert balance_breaks(summary, 1_500, 0) == []
    (found,) = balance_breaks(replace(summary, closing_fen=1_400), 1_400, 0)
    assert (found.type, found.expected_fen, found.actual_fen) == (
        BreakType.balance_mismatch,
        1_500,
        1_400,
    )
    (found,) = balance_breaks(summary, 1_600, 0)
    assert (found.type, found.expected_fen, found.actual_fen) == (
        BreakType.balance_mismatch,
        1_600,
        1_500,
    )


def test_a_difference_the_other_breaks_itemise_is_no_balance_break():
    """The bank holds 300 fen the ledger does not (an unauthorised debit of 200 and a credit of
    500 the other breaks report): the closing is explained, and only what is left over is not."""
    summary = summary_of(opening=1_000, credits=700, debits=200, closing=1_500)
    assert balance_breaks(summary, 1_200, 300) == []
    (found,) = balance_breaks(summary, 1_200, 299)
    assert (found.expected_fen, found.actual_fen) == (1_499, 1_500)
    assert "1 fen that no line explains" in found.detail


def test_a_statement_that_does_not_add_up_is_one_break_when_its_own_sum_agrees():
    summary = summary_of(opening=1_000, credits=700, debits=200, closing=1_400)
    (found,) = balance_breaks(summary, 1_500, 0)
    assert "does not add up" in found.detail


def test_the_nearest_movement_in_time_wins_a_window_match_and_ties_go_to_the_lower_id():
    ledger = [
        movement("E3", MovementKind.payment, 100, 10),
        movement("E1", MovementKind.payment, 100, 30),
        movement("E2", MovementKind.payment, 100, 50),
    ]
    result = run([line_of(1, "X", Direction.credit, 100, 40)], ledger)
    assert [(m.movement_id, m.rule) for m in result.matches] == [("E1", MatchRule.window)]
    # Outside the window: no match.
    far = run([line_of(1, "X", Direction.credit, 100, 81)], ledger[2:])
    assert [b.type for b in far.breaks] == [BreakType.missing_in_ledger, BreakType.missing_at_bank]


def test_a_serial_match_anywhere_beats_an_earlier_line_matching_by_amount():
    ledger = [movement("E1", MovementKind.payment, 100, 10, serial="S1")]
    lines = [
        line_of(1, "X", Direction.credit, 100, 10),
        line_of(2, "S1", Direction.credit, 100, 11),
    ]
    result = run(lines, ledger)
    assert [(m.line_number, m.rule) for m in result.matches] == [(2, MatchRule.serial)]
    assert [(b.type, b.line_number) for b in result.breaks] == [(BreakType.missing_in_ledger, 1)]


def test_an_order_paid_twice_keeps_the_ledger_payment_for_the_line_with_its_serial():
    ledger = [movement("E1", MovementKind.payment, 100, 10, serial="S1", reference=ORDER)]
    lines = [
        line_of(1, "S0", Direction.credit, 100, 5, ORDER),  # the second payment, listed first
        line_of(2, "S1", Direction.credit, 100, 10, ORDER),
    ]
    result = run(lines, ledger)
    assert [(m.line_number, m.rule) for m in result.matches] == [(2, MatchRule.serial)]
    (found,) = result.breaks
    assert (found.type, found.line_number, found.order_no) == (
        BreakType.missing_in_ledger,
        1,
        ORDER,
    )


def test_movements_must_name_one_movement_each():
    with pytest.raises(ValueError):
        Matcher([LEDGER[0], LEDGER[0]], window=WINDOW)
    with pytest.raises(ValueError):
        Matcher([LEDGER[0], LEDGER[1]._replace(bank_reference="S1")], window=WINDOW)
    with pytest.raises(ValueError):
        Matcher([LEDGER[0]._replace(direction=Direction.debit)], window=WINDOW)


# --- Properties ----------------------------------------------------------------------------------

KINDS = st.sampled_from(list(MovementKind))
AMOUNTS = st.integers(min_value=1, max_value=5)  # few amounts, so that they collide


@st.composite
def any_day(draw) -> tuple[list[Movement], list[StatementLine]]:
    """Movements and lines drawn from small pools of serials, references and amounts, so that
    every rule and every break meets every other."""
    serials = st.sampled_from(["S1", "S2", "S3", "S4"])
    references = st.none() | st.sampled_from([ORDER, PAYOUT_ID, REFUND_ID, "x"])
    ledger = []
    used = set()
    for n in range(draw(st.integers(0, 8))):
        serial = draw(st.none() | serials)
        if serial in used:
            serial = None
        used.add(serial)
        kind = draw(KINDS)
        ledger.append(
            movement(
                f"M{n}",
                kind,
                draw(AMOUNTS),
                draw(st.integers(0, 120)),
                serial=serial,
                reference=draw(references),
            )
        )
    lines = [
        line_of(
            number,
            draw(serials | st.just(f"L{number}")),
            draw(st.sampled_from(list(Direction))),
            draw(AMOUNTS),
            draw(st.integers(0, 120)),
            draw(references),
            returned=draw(st.booleans()),
        )
        for number in range(1, draw(st.integers(0, 8)) + 1)
    ]
    return ledger, [
        line if line.direction is Direction.credit else replace(line, returned=False)
        for line in lines
    ]


LINE_BREAKS = {
    BreakType.missing_in_ledger,
    BreakType.duplicate,
    BreakType.returned,
    BreakType.unauthorized_debit,
}


@given(any_day(), st.integers(0, 180))
def test_every_line_ends_in_one_outcome_and_every_movement_in_at_most_one(day, cutoff_minutes):
    ledger, lines = day
    result = run(lines, ledger, DAY + timedelta(minutes=cutoff_minutes))
    outcomes = [m.line_number for m in result.matches] + [
        b.line_number for b in result.breaks if b.line_number is not None
    ]
    assert sorted(outcomes) == [line.number for line in lines]
    used = (
        [m.movement_id for m in result.matches]
        + [b.movement_id for b in result.breaks if b.movement_id is not None]
        + [m.id for m in result.pending]
    )
    assert sorted(used) == sorted(m.id for m in ledger)  # each exactly once, in fact
    for found in result.breaks:
        if found.type in LINE_BREAKS:
            assert found.line_number is not None and found.movement_id is None
        elif found.type is BreakType.missing_at_bank:
            assert found.line_number is None
        else:
            assert found.type is BreakType.amount_mismatch
            assert None not in (found.line_number, found.movement_id)


@st.composite
def a_day_and_its_statement(draw) -> tuple[list[Movement], list[StatementLine], dict[int, str]]:
    """Movements at least a window apart, and the statement the bank makes of them: each line
    carries the movement's serial, or its reference, or only its amount at a time moved by less
    than half the window (so that its own movement is the nearest); in any order."""
    count = draw(st.integers(0, 12))
    ledger, lines, source = [], [], {}
    for n in range(count):
        kind = draw(KINDS)
        at = n * 40 + draw(st.integers(0, 5))
        ours = f"{'PO' if kind is not MovementKind.payment else 'PG'}{n:030x}"
        reference = ours if kind is not MovementKind.returned else f"RF{n:030x}"
        serial = draw(st.none() | st.just(f"S{n}"))
        moved = movement(f"M{n}", kind, draw(AMOUNTS), at, serial=serial, reference=reference)
        ledger.append(moved)
        style = draw(
            st.sampled_from(["serial", "reference", "amount"])
            if serial
            else st.sampled_from(["reference", "amount"])
        )
        jitter = draw(st.integers(-14, 14))
        line = line_of(
            n + 1,
            serial if style == "serial" else f"B{n}",
            moved.direction,
            moved.amount_fen,
            at + jitter,
            reference if style == "reference" else None,
            returned=kind is MovementKind.returned,
        )
        lines.append(line)
        source[line.number] = moved.id
    return ledger, draw(st.permutations(lines)), source


@given(a_day_and_its_statement())
def test_a_statement_made_from_the_ledger_matches_completely_in_any_order(day):
    ledger, lines, source = day
    result = run(lines, ledger)
    assert result.breaks == [] and result.pending == []
    assert {m.line_number: m.movement_id for m in result.matches} == source


@given(a_day_and_its_statement(), st.data())
def test_a_line_removed_is_missing_at_bank_and_a_foreign_credit_missing_in_ledger(day, data):
    ledger, lines, _ = day
    if lines:
        removed = data.draw(st.sampled_from(lines))
        result = run([line for line in lines if line is not removed], ledger)
        found = only_break(result)
        assert found.type is BreakType.missing_at_bank
        # While younger than the cut-off, it is pending instead.
        young = run([line for line in lines if line is not removed], ledger, DAY)
        assert young.breaks == [] and len(young.pending) == 1
    foreign = line_of(
        99, "F", Direction.credit, 1_000_000, data.draw(st.integers(0, 400)), "PGforeign"
    )
    found = only_break(run([*lines, foreign], ledger))
    assert (found.type, found.line_number, found.order_no) == (
        BreakType.missing_in_ledger,
        99,
        "PGforeign",
    )


FEN = st.integers(min_value=0, max_value=10**12)


@given(FEN, FEN, FEN, st.integers(-2, 2), st.integers(-2, 2), st.integers(-(10**9), 10**9))
def test_balance_breaks_are_empty_iff_the_day_rolls_forward_to_the_ledger(
    opening, credits, debits, off_roll, off_ledger, explained
):
    """However much the other breaks explain, what they do not is reported once; a statement
    that does not add up once more, unless its own sum is what the ledger expects."""
    rolled = opening + credits - debits
    closing = rolled + off_roll
    summary = summary_of(opening, credits, debits, closing)
    breaks = balance_breaks(summary, closing + off_ledger - explained, explained)
    assert (breaks == []) == (off_roll == 0 and off_ledger == 0)
    ledger_break = off_ledger != 0 and (off_roll == 0 or off_ledger != -off_roll)
    assert len(breaks) == (off_roll != 0) + ledger_break
    assert all(b.type is BreakType.balance_mismatch for b in breaks)


def test_first_pass_keeps_only_lines_it_cannot_settle_yet():
    matcher = Matcher(LEDGER, window=WINDOW)
    assert isinstance(matcher.first_pass(STATEMENT[0]), Match)
    assert matcher.first_pass(line_of(9, "X", Direction.credit, 1, 0)) is None
    rest = matcher.finish(grace_cutoff=AFTER_THE_DAY)
    assert [b.type for b in rest.breaks].count(BreakType.missing_in_ledger) == 1


@st.composite
def lines_and_movements_of_one_amount(draw) -> tuple[list[Movement], list[StatementLine]]:
    """Payments and credits of one amount only, at times that crowd the window."""
    minutes = st.integers(0, 90)
    ledger = [
        movement(f"M{n}", MovementKind.payment, 1, draw(minutes))
        for n in range(draw(st.integers(0, 10)))
    ]
    lines = [
        line_of(n, f"L{n}", Direction.credit, 1, draw(minutes))
        for n in range(1, draw(st.integers(0, 10)) + 1)
    ]
    return ledger, draw(st.permutations(lines))


@given(lines_and_movements_of_one_amount())
def test_window_matches_are_the_nearest_pairs_first_ties_to_the_lower_movement_id(day):
    ledger, lines = day
    pairs = sorted(
        (abs(m.at - line.booked_at), m.id, line.number)
        for m in ledger
        for line in lines
        if abs(m.at - line.booked_at) <= WINDOW
    )
    expected, taken = set(), set()
    for _, movement_id, number in pairs:
        if movement_id not in taken and number not in taken:
            taken |= {movement_id, number}
            expected.add((number, movement_id))
    result = run(lines, ledger)
    assert {(m.line_number, m.movement_id) for m in result.matches} == expected


@given(any_day(), st.integers(0, 180), st.data())
def test_take_settles_every_line_as_the_first_pass_does(day, cutoff_minutes, data):
    """The service's fast path over a whole statement ends with the same breaks, the same
    movements listed and the same finish as the first pass line by line."""
    ledger, lines = day
    watched = set(data.draw(st.lists(st.sampled_from([m.id for m in ledger]))) if ledger else [])
    one_by_one = Matcher(ledger, window=WINDOW)
    outcomes = [one_by_one.first_pass(line) for line in lines]
    fast = Matcher(ledger, window=WINDOW)

    breaks, listed = fast.take(lines, watched)

    assert breaks == [o for o in outcomes if isinstance(o, Break)]
    assert listed == {o.movement_id for o in outcomes if isinstance(o, Match)} & watched
    cutoff = DAY + timedelta(minutes=cutoff_minutes)
    assert fast.finish(grace_cutoff=cutoff) == one_by_one.finish(grace_cutoff=cutoff)
