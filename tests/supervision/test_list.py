"""GET /v1/regulator/institutions: each institution with its balance view, filtered, paged, scoped;
the bulk rows equal each institution's own view."""

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, update

from app.db.unit import Database
from app.models import Enrollment, Institution
from app.models.api_key import Role
from app.supervision.listing import balance_rows
from app.supervision.views import balance_view_now, balance_views
from tests.factories import World, auth, make_key, make_paid_enrollment, make_world
from tests.supervision.helpers import add_institution, county, fresh_world

LIST = "/v1/regulator/institutions"


async def _pages(client, key, limit, **params):
    items, cursor, pages = [], None, 0
    while True:
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = await client.get(LIST, params=query, headers=auth(key))
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


async def test_a_regulator_pages_through_its_own_institutions_only(engine, client):
    worlds = await county(engine, 5)
    elsewhere = await make_world(engine)
    items, pages = await _pages(client, worlds[0].regulator_key, 2)
    assert pages == 3
    assert sorted(item["id"] for item in items) == sorted(str(w.institution_id) for w in worlds)
    assert [item["id"] for item in items] == sorted(item["id"] for item in items)
    assert str(elsewhere.institution_id) not in {item["id"] for item in items}
    # Asking for another jurisdiction does not widen a regulator's list.
    narrowed, _ = await _pages(
        client, worlds[0].regulator_key, 50, jurisdiction_code=elsewhere.jurisdiction_code
    )
    assert {item["id"] for item in narrowed} == {item["id"] for item in items}


async def test_the_operator_sees_a_jurisdiction_it_names(engine, client):
    worlds = await county(engine, 2)
    items, _ = await _pages(
        client, worlds[0].admin_key, 500, jurisdiction_code=worlds[0].jurisdiction_code
    )
    assert {item["id"] for item in items} == {str(w.institution_id) for w in worlds}
    assert {item["jurisdiction_code"] for item in items} == {worlds[0].jurisdiction_code}


async def test_filters_by_level_name_uscc_and_bank(engine, client):
    world = await make_world(engine)
    named = await add_institution(engine, world, name="Sunshine Piano School")
    other_bank = await add_institution(engine, world, bank_slug="gmbank")
    await client.post(
        f"/v1/regulator/institutions/{other_bank.institution_id}/freeze",
        json={"reason": "audit"},
        headers=auth(world.regulator_key),
    )
    key = world.regulator_key

    async def ids(**params):
        items, _ = await _pages(client, key, 50, **params)
        return {uuid.UUID(item["id"]) for item in items}

    assert await ids(level="FROZEN") == {other_bank.institution_id}
    assert await ids(level="GREEN") == {world.institution_id, named.institution_id}
    assert await ids(q="Piano") == {named.institution_id}
    uscc = (await client.get(f"/v1/institutions/{world.institution_id}", headers=auth(key))).json()[
        "uscc"
    ]
    assert await ids(q=uscc[3:12]) == {world.institution_id}
    assert await ids(bank="gmbank") == {other_bank.institution_id}
    assert await ids(bank="gmbank", level="GREEN") == set()


async def test_items_carry_the_institution_and_its_single_balance_view(engine, client):
    world = await make_world(engine, min_balance_floor_fen=10_000, release_lag_days=0)
    await make_paid_enrollment(engine, world, lessons=10, released=3, pending=1)
    [item], _ = await _pages(client, world.regulator_key, 50)
    single = await client.get(
        f"/v1/regulator/institutions/{world.institution_id}/balance",
        headers=auth(world.regulator_key),
    )
    assert item["balance"] == single.json()
    assert item["balance"]["unconsumed_fen"] == 70_000
    assert item["balance"]["releasable_fen"] == 30_000
    for field in ("name", "uscc", "category", "bank_slug", "status", "list_status"):
        assert item[field]
    assert item["alert_level"] == "GREEN"


async def test_outsiders_and_bad_queries_are_refused(engine, client):
    world = await make_world(engine)
    institution = await client.get(LIST, headers=auth(world.institution_key))
    assert institution.status_code == 404
    parent = await make_key(engine, Role.parent, enrollment_id=uuid.uuid4())
    assert (await client.get(LIST, headers=auth(parent))).status_code == 404
    assert (await client.get(LIST)).status_code == 401
    key = auth(world.regulator_key)
    for params in (
        {"limit": 501},
        {"limit": 0},
        {"cursor": "not-a-cursor!"},
        {"level": "PURPLE"},
        {"bank": "NO SUCH"},
        {"as_of": "2020-01-01T00:00:00"},
        {"as_of": "2999-01-01T00:00:00+08:00"},
    ):
        response = await client.get(LIST, params=params, headers=key)
        assert response.status_code == 422, params
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] in (
            "validation_error",
            "invalid_cursor",
            "invalid_as_of",
            "as_of_in_future",
        )


# --- the bulk rows equal the single views ------------------------------------------------------

ENROLLMENT = st.tuples(
    st.integers(min_value=1, max_value=8),  # lessons
    st.sampled_from([100, 9_999, 10_000, 33_333]),  # price
    st.integers(min_value=0, max_value=8),  # released
    st.integers(min_value=0, max_value=8),  # pending
)
PROFILE = st.fixed_dictionaries(
    {
        "holdback_pct": st.sampled_from([0, 10, 33]),
        "min_balance_floor_fen": st.sampled_from([0, 50_000]),
        "min_balance_pct_of_unconsumed": st.sampled_from([0, 15]),
        "release_lag_days": st.sampled_from([0, 1]),
        "monthly_payout_cap_floor_multiple": st.sampled_from([None, 2]),
    }
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    profiles=st.lists(PROFILE, min_size=1, max_size=2),
    ledgers=st.lists(st.lists(ENROLLMENT, max_size=2), min_size=1, max_size=4),
    floors=st.lists(st.sampled_from([None, 0, 123_457]), min_size=4, max_size=4),
)
async def test_bulk_rows_equal_each_institutions_own_view(engine, profiles, ledgers, floors):
    """For random worlds (institutions of one or two jurisdictions with their own profiles,
    floors and enrollments), the page computed in bulk equals each institution's view computed on
    its own, and its U equals what the enrollments still hold."""
    worlds: list[World] = [await fresh_world(engine, **profile) for profile in profiles]
    ids = []
    for index, enrollments in enumerate(ledgers):
        world = await add_institution(engine, worlds[index % len(worlds)])
        ids.append(world.institution_id)
        for lessons, price, released, pending in enrollments:
            released = min(released, lessons)
            pending = min(pending, lessons - released)
            await make_paid_enrollment(
                engine, world, lessons, price, released=released, pending=pending
            )
        if floors[index] is not None:
            await Database(engine).run(
                lambda session, i=world.institution_id, f=floors[index]: session.execute(
                    update(Institution).where(Institution.id == i).values(min_balance_floor_fen=f)
                )
            )

    async def check(session):
        rows = []
        for world in worlds:
            rows += await balance_rows(session, world.jurisdiction_code, limit=500)
        rows = [(institution, view) for institution, view in rows if institution.id in ids]
        assert sorted(institution.id for institution, _ in rows) == sorted(ids)
        for institution, view in rows:
            [alone] = await balance_views(session, [institution])
            assert view == alone
            assert view == await balance_view_now(session, institution)
            enrollments = (
                await session.scalars(
                    Enrollment.__table__.select()
                    .with_only_columns(
                        Enrollment.paid_fen - Enrollment.confirmed_fen - Enrollment.refunded_fen
                    )
                    .where(Enrollment.institution_id == institution.id)
                )
            ).all()
            assert view.unconsumed_fen == sum(enrollments)
            assert view.required_fen == view.unconsumed_fen + view.holdback_fen + view.floor_fen

    await Database(engine).run(check)


async def test_a_page_costs_the_same_statements_however_many_institutions_it_holds(engine):
    """The figures of a page are read set-based: 2 institutions or 12, the same statements."""
    small = await county(engine, 2, holdback_pct=10)
    large = await county(engine, 12, holdback_pct=10)
    for world in (small[0], large[-1]):
        await make_paid_enrollment(engine, world, lessons=3, released=1)
    counts = []
    for worlds in (small, large):
        statements: list[str] = []

        def count(conn, cursor, statement, *args, found=statements):
            found.append(statement)

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            rows = await Database(engine).run(
                lambda session, code=worlds[0].jurisdiction_code: balance_rows(
                    session, code, limit=500
                )
            )
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        assert len(rows) == len(worlds)
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 8, counts
