"""GET /v1/regulator/alerts: open and closed, filtered, oldest first, scoped."""

from datetime import timedelta

import time_machine

from app.alerts.engine import close_alert
from app.alerts.service import raise_alert
from app.db.unit import Database
from app.kit.clock import utcnow
from app.models.alert import AlertKind
from app.models.institution import AlertLevel
from tests.factories import auth, make_world
from tests.supervision.helpers import add_institution

ALERTS = "/v1/regulator/alerts"


async def _raise(engine, institution_id, kind, level, key, reason):
    await Database(engine).run(
        lambda session: raise_alert(session, institution_id, kind, level, key, reason)
    )


async def _list(client, key, **params):
    response = await client.get(ALERTS, params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def test_alerts_filtered_and_scoped(engine, client):
    world = await make_world(engine)
    sibling = await add_institution(engine, world)
    elsewhere = await make_world(engine)
    start = utcnow()
    with time_machine.travel(start - timedelta(days=2), tick=False):
        await _raise(engine, world.institution_id, AlertKind.suspense, AlertLevel.yellow, "s1", "A")
    with time_machine.travel(start - timedelta(days=1), tick=False):
        await _raise(
            engine, sibling.institution_id, AlertKind.shortfall, AlertLevel.red, "now", "B < U"
        )
        await Database(engine).run(
            lambda session: close_alert(
                session,
                world.institution_id,
                AlertKind.suspense,
                "s1",
                now=utcnow(),
                reason="cleared",
                actor="test",
            )
        )
    await _raise(engine, elsewhere.institution_id, AlertKind.shortfall, AlertLevel.red, "x", "no")

    key = world.regulator_key
    everything = await _list(client, key)
    assert [a["reason"] for a in everything["items"]] == ["A", "B < U"]  # oldest first
    assert {a["institution_id"] for a in everything["items"]} == {
        str(world.institution_id),
        str(sibling.institution_id),
    }
    first = everything["items"][0]
    assert (first["kind"], first["level"], first["status"]) == ("suspense", "YELLOW", "closed")
    assert first["closed_at"] is not None and first["opened_at"] < first["closed_at"]

    def reasons(page):
        return [a["reason"] for a in page["items"]]

    assert reasons(await _list(client, key, status="open")) == ["B < U"]
    assert reasons(await _list(client, key, status="closed")) == ["A"]
    assert reasons(await _list(client, key, level="RED")) == ["B < U"]
    assert reasons(await _list(client, key, kind="suspense")) == ["A"]
    assert reasons(await _list(client, key, institution_id=str(sibling.institution_id))) == [
        "B < U"
    ]
    since = (start - timedelta(days=1, hours=1)).isoformat()
    assert reasons(await _list(client, key, since=since)) == ["B < U"]
    assert reasons(await _list(client, key, until=since)) == ["A"]
    page = await _list(client, key, limit=1)
    assert reasons(page) == ["A"]
    assert reasons(await _list(client, key, limit=1, cursor=page["next_cursor"])) == ["B < U"]
    # The operator sees the other jurisdiction's too.
    operator = await _list(client, world.admin_key, institution_id=str(elsewhere.institution_id))
    assert reasons(operator) == ["no"]


async def test_outsiders_and_bad_filters(engine, client):
    world = await make_world(engine)
    elsewhere = await make_world(engine)
    other_institution = {"institution_id": str(elsewhere.institution_id)}
    response = await client.get(ALERTS, params=other_institution, headers=auth(world.regulator_key))
    assert response.status_code == 404
    assert (await client.get(ALERTS, headers=auth(world.institution_key))).status_code == 404
    for params in ({"status": "ajar"}, {"level": "BLUE"}, {"kind": "nope"}, {"since": "soon"}):
        response = await client.get(ALERTS, params=params, headers=auth(world.regulator_key))
        assert (response.status_code, response.json()["code"]) == (422, "validation_error")
