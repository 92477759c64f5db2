"""Payments in: a verified bank payment credits its order exactly once; any money that matches no
order as it stands goes to suspense, flagged, and the books still balance."""

import asyncio
from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import event, select

from app.db.unit import Database
from app.kit.clock import utcnow
from app.ledger.types import AccountKind
from app.models import Enrollment, SuspenseItem
from app.payments.errors import ForeignEscrowAccount, InvalidBankPayment, UnknownEscrowAccount
from app.payments.service import PaymentResult
from tests.enrollments.helpers import (
    bank_payment,
    books,
    credit,
    enrolled,
    expire,
    make_course,
)
from tests.factories import auth, make_world

PRICE = 10_000


async def _setup(client, engine, lessons=10, **profile):
    world = await make_world(engine, **profile)
    course = await make_course(client, world, lesson_price_fen=PRICE)
    enrollment = await enrolled(client, world, course["id"], lessons)
    return world, enrollment


async def _enrollment(client, world, enrollment):
    response = await client.get(
        f"/v1/enrollments/{enrollment['id']}", headers=auth(world.institution_key)
    )
    assert response.status_code == 200
    return response.json()


async def _suspense_items(engine, world, reference=None):
    query = select(SuspenseItem).where(SuspenseItem.institution_id == world.institution_id)
    if reference is not None:
        query = query.where(SuspenseItem.bank_reference == reference)
    return (await Database(engine).run(lambda s: s.scalars(query))).all()


async def test_the_exact_amount_credits_the_order(client, engine):
    world, enrollment = await _setup(client, engine)
    paid_at = utcnow()
    outcome = await credit(
        engine, bank_payment(world, enrollment["order_no"], 10 * PRICE, paid_at=paid_at)
    )

    assert outcome.result is PaymentResult.credited
    assert outcome.enrollment_id == UUID(enrollment["id"])
    assert outcome.ledger_seq >= 1 and not outcome.replayed
    shown = await _enrollment(client, world, enrollment)
    assert shown["status"] == "active"
    assert shown["paid_fen"] == shown["unconsumed_fen"] == shown["refundable_fen"] == 10 * PRICE
    assert utcnow().fromisoformat(shown["paid_at"]) == paid_at
    totals = await books(engine, world.institution_id)
    assert totals[AccountKind.escrow_cash] == totals[AccountKind.prepaid] == 10 * PRICE
    assert totals[AccountKind.suspense] == 0
    assert await _suspense_items(engine, world) == []


@pytest.mark.parametrize("amount", [10 * PRICE - 1, 10 * PRICE + 1, 5 * PRICE])
async def test_another_amount_goes_to_suspense(client, engine, amount):
    world, enrollment = await _setup(client, engine)
    payment = bank_payment(world, enrollment["order_no"], amount)
    outcome = await credit(engine, payment)

    assert outcome.result is PaymentResult.suspense
    assert outcome.reason == "amount_mismatch"
    shown = await _enrollment(client, world, enrollment)
    assert (shown["status"], shown["paid_fen"]) == ("awaiting_payment", 0)
    [item] = await _suspense_items(engine, world)
    assert (item.reason, item.amount_fen, item.order_no) == (
        "amount_mismatch",
        amount,
        enrollment["order_no"],
    )
    assert (item.bank_slug, item.bank_reference) == ("ums", payment.bank_reference)
    assert item.ledger_seq == outcome.ledger_seq and item.resolved_at is None
    totals = await books(engine, world.institution_id)
    assert totals[AccountKind.suspense] == totals[AccountKind.escrow_cash] == amount
    assert totals[AccountKind.prepaid] == 0


@pytest.mark.parametrize("order_no", ["PGnosuchorder", None, "X" * 40])
async def test_an_unknown_order_goes_to_suspense(client, engine, order_no):
    world, _ = await _setup(client, engine)
    outcome = await credit(engine, bank_payment(world, order_no, 12_345))

    assert (outcome.result, outcome.reason) == (PaymentResult.suspense, "unknown_order")
    [item] = await _suspense_items(engine, world)
    assert (item.reason, item.amount_fen) == ("unknown_order", 12_345)
    assert item.order_no == (order_no if order_no and len(order_no) <= 32 else None)
    totals = await books(engine, world.institution_id)
    assert totals[AccountKind.suspense] == 12_345


async def test_an_order_of_another_institution_is_unknown_here(client, engine):
    world, _ = await _setup(client, engine)
    other, theirs = await _setup(client, engine)
    outcome = await credit(engine, bank_payment(world, theirs["order_no"], theirs["amount_fen"]))
    assert outcome.reason == "unknown_order"
    assert (await _enrollment(client, other, theirs))["status"] == "awaiting_payment"


async def test_a_second_payment_of_a_paid_order_goes_to_suspense(client, engine):
    world, enrollment = await _setup(client, engine)
    first = await credit(engine, bank_payment(world, enrollment["order_no"], 10 * PRICE))
    second = await credit(engine, bank_payment(world, enrollment["order_no"], 10 * PRICE))

    assert first.result is PaymentResult.credited
    assert (second.result, second.reason) == (PaymentResult.suspense, "already_paid")
    assert (await _enrollment(client, world, enrollment))["paid_fen"] == 10 * PRICE
    totals = await books(engine, world.institution_id)
    assert totals[AccountKind.prepaid] == totals[AccountKind.suspense] == 10 * PRICE
    assert totals[AccountKind.escrow_cash] == 20 * PRICE


async def test_a_payment_after_expiry_goes_to_suspense(client, engine):
    world, enrollment = await _setup(client, engine, unpaid_enrollment_expiry_minutes=30)
    expires_at = utcnow().fromisoformat(enrollment["expires_at"])

    late = await credit(
        engine, bank_payment(world, enrollment["order_no"], 10 * PRICE, paid_at=expires_at)
    )
    assert (late.result, late.reason) == (PaymentResult.suspense, "not_awaiting_payment")
    assert (await _enrollment(client, world, enrollment))["status"] == "awaiting_payment"

    await expire(Database(engine), expires_at)
    just_in_time = bank_payment(
        world, enrollment["order_no"], 10 * PRICE, paid_at=expires_at - timedelta(seconds=1)
    )
    cancelled = await credit(engine, just_in_time)
    assert (cancelled.result, cancelled.reason) == (PaymentResult.suspense, "not_awaiting_payment")
    assert (await _enrollment(client, world, enrollment))["status"] == "cancelled"
    totals = await books(engine, world.institution_id)
    assert totals[AccountKind.suspense] == 20 * PRICE and totals[AccountKind.prepaid] == 0


async def test_just_before_expiry_is_credited(client, engine):
    world, enrollment = await _setup(client, engine, unpaid_enrollment_expiry_minutes=30)
    expires_at = utcnow().fromisoformat(enrollment["expires_at"])
    outcome = await credit(
        engine,
        bank_payment(
            world, enrollment["order_no"], 10 * PRICE, paid_at=expires_at - timedelta(seconds=1)
        ),
    )
    assert outcome.result is PaymentResult.credited


async def test_an_unknown_escrow_account_is_refused_and_nothing_recorded(client, engine):
    world, enrollment = await _setup(client, engine)
    payment = bank_payment(world, enrollment["order_no"], 10 * PRICE)
    stranger = type(payment)(**{**_fields(payment), "escrow_account_no": "6222999999999999999"})
    with pytest.raises(UnknownEscrowAccount) as refused:
        await credit(engine, stranger)
    assert refused.value.code == "unknown_escrow_account"
    assert (await _enrollment(client, world, enrollment))["status"] == "awaiting_payment"
    assert await _suspense_items(engine, world) == []
    assert (await books(engine, world.institution_id))[AccountKind.escrow_cash] == 0


async def test_a_payment_reported_by_another_bank_than_the_accounts_is_refused(client, engine):
    world, enrollment = await _setup(client, engine)
    payment = bank_payment(world, enrollment["order_no"], 10 * PRICE)
    foreign = type(payment)(**{**_fields(payment), "bank_slug": "another-bank"})
    with pytest.raises(ForeignEscrowAccount) as refused:
        await credit(engine, foreign)
    assert refused.value.code == "foreign_escrow_account"
    assert (await _enrollment(client, world, enrollment))["status"] == "awaiting_payment"
    assert (await books(engine, world.institution_id))[AccountKind.escrow_cash] == 0


async def test_the_payers_route_is_kept_for_the_refund(client, engine):
    world, enrollment = await _setup(client, engine)
    payment = bank_payment(world, enrollment["order_no"], 10 * PRICE)
    routed = type(payment)(
        **{**_fields(payment), "payer_name": "张三", "payer_account_no": "6222020200001234"}
    )
    await credit(engine, routed)
    kept = await Database(engine).run(
        lambda s: s.get(Enrollment, (world.institution_id, UUID(enrollment["id"])))
    )
    assert (kept.payment_reference, kept.payment_payer_name, kept.payment_payer_account_no) == (
        payment.bank_reference,
        "张三",
        "6222020200001234",
    )


@pytest.mark.parametrize(
    "change",
    [{"amount_fen": 0}, {"amount_fen": -5}, {"amount_fen": 10.0}, {"bank_reference": ""}],
)
async def test_a_malformed_bank_payment_is_refused(client, engine, change):
    world, enrollment = await _setup(client, engine)
    payment = bank_payment(world, enrollment["order_no"], 10 * PRICE)
    with pytest.raises(InvalidBankPayment):
        await credit(engine, type(payment)(**{**_fields(payment), **change}))
    assert (await books(engine, world.institution_id))[AccountKind.escrow_cash] == 0


def _fields(payment):
    return {name: getattr(payment, name) for name in payment.__slots__}


@pytest.mark.parametrize("amount", [10 * PRICE, 10 * PRICE + 7])
async def test_ten_repeats_of_one_notification_have_one_effect(client, engine, amount):
    world, enrollment = await _setup(client, engine)
    payment = bank_payment(world, enrollment["order_no"], amount)
    outcomes = [await credit(engine, payment) for _ in range(10)]

    assert not outcomes[0].replayed and all(o.replayed for o in outcomes[1:])
    first = outcomes[0]
    assert {(o.result, o.ledger_seq, o.reason, o.suspense_item_id) for o in outcomes} == {
        (first.result, first.ledger_seq, first.reason, first.suspense_item_id)
    }
    totals = await books(engine, world.institution_id)
    assert totals[AccountKind.escrow_cash] == amount
    assert len(await _suspense_items(engine, world)) == (0 if amount == 10 * PRICE else 1)


@pytest.mark.parametrize("order", ["enrollment", "unknown"])
async def test_concurrent_repeats_of_one_notification_have_one_effect(client, engine, order):
    world, enrollment = await _setup(client, engine)
    order_no = enrollment["order_no"] if order == "enrollment" else "PGunknown"
    payment = bank_payment(world, order_no, 10 * PRICE)
    outcomes = await asyncio.gather(*(credit(engine, payment) for _ in range(10)))

    assert sum(not o.replayed for o in outcomes) == 1
    assert len({(o.result, o.ledger_seq) for o in outcomes}) == 1
    totals = await books(engine, world.institution_id)
    assert totals[AccountKind.escrow_cash] == 10 * PRICE
    if order == "enrollment":
        assert outcomes[0].result is PaymentResult.credited
        assert totals[AccountKind.prepaid] == 10 * PRICE
        assert (await _enrollment(client, world, enrollment))["paid_fen"] == 10 * PRICE
    else:
        assert totals[AccountKind.suspense] == 10 * PRICE
        assert len(await _suspense_items(engine, world)) == 1


async def test_concurrent_different_payments_of_one_order_credit_it_once(client, engine):
    world, enrollment = await _setup(client, engine)
    payments = [bank_payment(world, enrollment["order_no"], 10 * PRICE) for _ in range(10)]
    outcomes = await asyncio.gather(*(credit(engine, p) for p in payments))

    assert sorted(o.result for o in outcomes) == ["credited"] + ["suspense"] * 9
    assert {o.reason for o in outcomes if o.result == "suspense"} == {"already_paid"}
    totals = await books(engine, world.institution_id)
    assert totals[AccountKind.prepaid] == 10 * PRICE
    assert totals[AccountKind.suspense] == 90 * PRICE
    assert len(await _suspense_items(engine, world)) == 9


@pytest.mark.postgres_only
async def test_a_credit_takes_the_ledger_lock_once(client, engine):
    """The payment locks the ledger before looking for its earlier outcome; its post then finds
    the lock held and reads and writes the entry in a statement each."""
    world, enrollment = await _setup(client, engine)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        outcome = await credit(engine, bank_payment(world, enrollment["order_no"], 10 * PRICE))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert outcome.result is PaymentResult.credited
    locks = [s for s in statements if "FROM ledger_heads" in s and "FOR UPDATE" in s]
    assert len(locks) == 1, statements
