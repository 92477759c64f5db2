"""The balance view through the API: the hold-back in whole fen, the coverage ratio's rounding, and
the allowance next to what is releasable."""

import asyncio
import uuid

import pytest
from sqlalchemy import event, select

from app.balances import service as balances
from app.models import Institution
from tests.factories import auth, make_paid_enrollment, make_world


async def _view(client, world, key=None):
    response = await client.get(
        f"/v1/regulator/institutions/{world.institution_id}/balance",
        headers=auth(key or world.regulator_key),
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_holdback_rounds_each_receipt_up_and_adds_whole_fen(engine, client):
    world = await make_world(engine, holdback_pct=10)
    for _ in range(3):
        await make_paid_enrollment(engine, world, lessons=1, lesson_price_fen=10_000)
    await make_paid_enrollment(engine, world, lessons=1, lesson_price_fen=10_001)
    view = await _view(client, world)
    # 3 x 10% of 10,000 + ceil(10% of 10,001) = 3,000 + 1,001.
    assert view["holdback_fen"] == 4_001
    assert view["required_fen"] == 40_001 + 4_001


async def test_coverage_ratio_rounds_half_up_to_four_places(engine, client):
    # B = 200,000; R = U + F = 200,000 + 100,000: B / R = 0.66666...
    world = await make_world(engine, min_balance_floor_fen=100_000)
    await make_paid_enrollment(engine, world, lessons=20)
    view = await _view(client, world)
    assert (view["balance_fen"], view["required_fen"]) == (200_000, 300_000)
    assert view["coverage_ratio"] == "0.6667"
    assert (await _view(client, world, world.institution_key))["coverage_ratio"] == "0.6667"


async def test_coverage_ratio_is_null_when_nothing_is_required(engine, client):
    world = await make_world(engine)
    view = await _view(client, world)
    assert (view["required_fen"], view["coverage_ratio"]) == (0, None)


async def test_allowance_is_shown_next_to_releasable(engine, client):
    # Releasable 100,000 (10 lessons released), but R = 100,000 + 50,000 leaves 50,000 to pay.
    world = await make_world(engine, min_balance_floor_fen=50_000, release_lag_days=0)
    await make_paid_enrollment(engine, world, lessons=20, released=10)
    view = await _view(client, world)
    assert (view["releasable_fen"], view["payout_allowance_fen"]) == (100_000, 50_000)
    assert view["monthly_cap_left_fen"] is None


async def test_a_balance_view_is_not_held_up_by_a_writer(engine, client):
    """A view reads without a transaction of its own (`Database.read`): a writer holding the
    institution (its row lock on PostgreSQL, the database's writer lock on SQLite) for longer than
    the view waits does not delay it."""
    world = await make_world(engine)
    await make_paid_enrollment(engine, world, lessons=4)
    async with engine.connect() as writer:
        await writer.begin()  # BEGIN IMMEDIATE on SQLite: the writer lock
        await writer.execute(
            select(Institution.id).where(Institution.id == world.institution_id).with_for_update()
        )
        view = await asyncio.wait_for(_view(client, world, world.institution_key), timeout=5)
        own = await asyncio.wait_for(
            client.get(
                f"/v1/institutions/{world.institution_id}/balance",
                headers=auth(world.institution_key),
            ),
            timeout=5,
        )
        await writer.rollback()
    assert view["unconsumed_fen"] == 4 * 10_000
    assert own.status_code == 200 and own.json() == view


async def _own_view(client, world, app, key=None):
    """The view at /v1/institutions/{id}/balance, with the statements the app sent for it."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            statements.append(statement)

    event.listen(app.state.engine.sync_engine, "before_cursor_execute", count)
    try:
        response = await client.get(
            f"/v1/institutions/{world.institution_id}/balance",
            headers=auth(key or world.institution_key),
        )
    finally:
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", count)
    return response, statements


async def test_a_known_institutions_view_is_one_statement_and_the_same_view(engine, app, client):
    """The first view of an institution reads its row, then its figures; once its jurisdiction
    is known, the row comes with the figures in one statement, and the view is the same."""
    world = await make_world(engine, holdback_pct=10, min_balance_floor_fen=30_000)
    await make_paid_enrollment(engine, world, lessons=5, released=2, pending=1)
    await _own_view(client, world, app)  # the key and the profile found, as a caller's first
    balances._jurisdiction_of.clear()

    first, first_statements = await _own_view(client, world, app)
    second, second_statements = await _own_view(client, world, app)

    assert first.status_code == second.status_code == 200, first.text
    assert first.json() == second.json()
    assert first.json()["holdback_fen"] == 5_000 and first.json()["floor_fen"] == 30_000
    assert len(first_statements) == 2
    assert len(second_statements) == 1
    assert first.json() == await _view(client, world)


@pytest.mark.parametrize("known", [False, True], ids=["first view", "jurisdiction known"])
async def test_a_view_out_of_scope_is_404_either_way(engine, app, client, known):
    world = await make_world(engine)
    other = await make_world(engine)
    if known:
        await _own_view(client, world, app)
    else:
        balances._jurisdiction_of.clear()

    # Another institution's key, another jurisdiction's regulator, an institution that is not.
    for key in (other.institution_key, other.regulator_key):
        response, _ = await _own_view(client, world, app, key)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "institution_not_found"
    missing = await client.get(
        f"/v1/institutions/{uuid.uuid4()}/balance", headers=auth(world.regulator_key)
    )
    assert missing.status_code == 404 and missing.json()["code"] == "institution_not_found"
    allowed, _ = await _own_view(client, world, app, world.regulator_key)
    assert allowed.status_code == 200, allowed.text
