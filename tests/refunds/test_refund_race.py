"""One answer per refund: an approval and a rejection sent at once are serialised on the refund's
row; the first decides, the second gets `409 refund_not_requested` and changes nothing."""

import asyncio

import pytest

from tests.factories import auth
from tests.refunds.test_refunds import _ask, _balance, _setup

ROUNDS = 20


@pytest.mark.postgres_only
async def test_concurrent_approve_and_reject_one_decision_wins(engine, live_client):
    for _ in range(ROUNDS):
        world, enrollment, parent = await _setup(engine)
        refund = (await _ask(live_client, enrollment, parent)).json()
        headers = auth(world.institution_key)
        approve, reject = await asyncio.gather(
            live_client.post(f"/v1/refunds/{refund['id']}/approve", headers=headers),
            live_client.post(
                f"/v1/refunds/{refund['id']}/reject", json={"reason": "no"}, headers=headers
            ),
        )
        assert sorted([approve.status_code, reject.status_code]) == [200, 409]
        loser = approve if approve.status_code == 409 else reject
        assert loser.json()["code"] == "refund_not_requested"

        seen = (await live_client.get(f"/v1/refunds/{refund['id']}", headers=auth(parent))).json()
        in_transit = (await _balance(live_client, world))["in_transit_fen"]
        if approve.status_code == 200:
            assert (seen["status"], seen["instruction_id"] is not None) == ("approved", True)
            assert in_transit == 120_000
        else:
            assert (seen["status"], seen["instruction_id"]) == ("rejected", None)
            assert in_transit == 0
