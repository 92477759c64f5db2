"""The balance view as of a past moment: equal to the view seen then, and to a recomputation from
the journal; the bank's balance of the latest statement by then; refused for the future."""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.types import AccountKind
from app.models import Institution, ReconciliationRun
from app.supervision.errors import AsOfInFuture, InvalidAsOf
from app.supervision.views import parse_as_of
from tests.factories import auth, make_paid_enrollment, make_world


def _balance(world, key=None):
    return f"/v1/regulator/institutions/{world.institution_id}/balance"


async def _view(client, world, key, **params):
    response = await client.get(_balance(world), params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def _from_journal(engine, institution_id, moment):
    """Escrow cash and U as they stood at `moment`, replayed from the journal by account."""
    async with engine.connect() as connection:
        sums = await ledger.balances_as_of(connection, institution_id, moment)
        accounts = await ledger.accounts(connection, institution_id)
    by_kind = dict.fromkeys(AccountKind, 0)
    for account_id, raw in sums.items():
        account = accounts[account_id]
        by_kind[account.kind] += raw * account.normal
    return by_kind[AccountKind.escrow_cash], by_kind[AccountKind.prepaid]


async def test_the_view_as_of_a_past_moment_is_the_view_seen_then(engine, client):
    world = await make_world(engine, min_balance_pct_of_unconsumed=10, release_lag_days=0)
    # Three days back: the factory pays an enrollment a day before its "now".
    with time_machine.travel(utcnow() - timedelta(days=3), tick=True):
        await make_paid_enrollment(engine, world, lessons=10, released=2, pending=1)
        then = await _view(client, world, world.regulator_key)
        t1 = utcnow()
    # Money moves on after t1: a new payment, more lessons released.
    await make_paid_enrollment(engine, world, lessons=20, released=5)
    now = await _view(client, world, world.regulator_key)
    assert now["unconsumed_fen"] != then["unconsumed_fen"]

    past = await _view(client, world, world.regulator_key, as_of=t1.isoformat())
    assert past == then
    # The institution asks the same of its own view.
    assert await _view(client, world, world.institution_key, as_of=t1.isoformat()) == then
    # And it is what the journal says, replayed by account.
    escrow, unconsumed = await _from_journal(engine, world.institution_id, t1)
    assert (past["ledger_balance_fen"], past["unconsumed_fen"]) == (escrow, unconsumed)
    assert (escrow, unconsumed) == (100_000, 80_000)
    # Now also equals a replay up to now.
    escrow, unconsumed = await _from_journal(engine, world.institution_id, utcnow())
    assert (now["ledger_balance_fen"], now["unconsumed_fen"]) == (escrow, unconsumed)


async def test_before_anything_happened_the_view_is_empty(engine, client):
    world = await make_world(engine)
    await make_paid_enrollment(engine, world, lessons=5)
    long_ago = (utcnow() - timedelta(days=30)).isoformat()
    past = await _view(client, world, world.regulator_key, as_of=long_ago)
    assert (past["ledger_balance_fen"], past["unconsumed_fen"], past["required_fen"]) == (0, 0, 0)
    assert past["coverage_ratio"] is None


async def test_the_bank_balance_is_the_latest_statement_closed_by_then(engine, client):
    world = await make_world(engine)
    today = local_date(utcnow())
    days = {today - timedelta(days=5): 111, today - timedelta(days=2): 222}
    superseded = today - timedelta(days=1)

    async def statements(session):
        for day, closing in [*days.items(), (superseded, 999)]:
            session.add(
                ReconciliationRun(
                    institution_id=world.institution_id,
                    id=uuid.uuid4(),
                    bank_slug="ums",
                    account_no=world.escrow_account_no,
                    statement_date=day,
                    status="superseded" if day == superseded else "clean",
                    lines=0,
                    opening_fen=closing,
                    closing_fen=closing,
                    credits_fen=0,
                    debits_fen=0,
                    ledger_balance_fen=0,
                    created_at=utcnow(),
                )
            )
        institution = await session.get_one(Institution, world.institution_id)
        institution.bank_balance_fen = 222
        institution.bank_balance_as_of = datetime.combine(
            today - timedelta(days=1), datetime.min.time(), SHANGHAI
        )

    await Database(engine).run(statements)
    key = world.regulator_key
    assert (await _view(client, world, key))["bank_balance_fen"] == 222
    # The end of the day before yesterday: the statement of that day had closed.
    view = await _view(client, world, key, as_of=(today - timedelta(days=2)).isoformat())
    assert view["bank_balance_fen"] == 222
    view = await _view(client, world, key, as_of=(today - timedelta(days=3)).isoformat())
    assert view["bank_balance_fen"] == 111
    assert view["bank_balance_as_of"] is not None
    assert datetime.fromisoformat(view["bank_balance_as_of"]) == datetime.combine(
        today - timedelta(days=4), datetime.min.time(), SHANGHAI
    )
    view = await _view(client, world, key, as_of=(today - timedelta(days=9)).isoformat())
    assert (view["bank_balance_fen"], view["bank_balance_as_of"]) == (None, None)


@pytest.mark.parametrize(
    "as_of",
    [
        "2999-01-01",
        "2999-01-01T00:00:00+08:00",
        "2020-01-01T00:00:00",
        "yesterday",
        "2020-13-01",
    ],
)
async def test_a_future_or_unreadable_as_of_is_refused(engine, client, as_of):
    world = await make_world(engine)
    for path in (_balance(world), f"/v1/institutions/{world.institution_id}/balance"):
        key = world.regulator_key if "regulator" in path else world.institution_key
        response = await client.get(path, params={"as_of": as_of}, headers=auth(key))
        assert response.status_code == 422, response.text
        assert response.json()["code"] in ("as_of_in_future", "invalid_as_of")


async def test_today_as_a_date_has_not_ended(engine, client):
    world = await make_world(engine)
    today = local_date(utcnow()).isoformat()
    response = await client.get(
        _balance(world), params={"as_of": today}, headers=auth(world.regulator_key)
    )
    assert (response.status_code, response.json()["code"]) == (422, "as_of_in_future")


NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_as_of_is_accepted_exactly_when_it_is_not_after_now(moment):
    aware = moment.replace(tzinfo=SHANGHAI)
    if aware > NOW:
        with pytest.raises(AsOfInFuture):
            parse_as_of(aware.isoformat(), NOW)
    else:
        assert parse_as_of(aware.isoformat(), NOW) == aware
    with pytest.raises(InvalidAsOf):
        parse_as_of(moment.isoformat(), NOW)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)))
def test_a_date_is_the_end_of_that_day_in_shanghai(day):
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), SHANGHAI)
    if end > NOW:
        with pytest.raises(AsOfInFuture):
            parse_as_of(day.isoformat(), NOW)
        return
    moment = parse_as_of(day.isoformat(), NOW)
    assert moment == end
    assert local_date(moment - timedelta(microseconds=1)) == day
