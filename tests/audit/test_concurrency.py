"""Many actions at once on one chain, and on the platform's: the head's row lock serialises each
chain, so every record gets its own seq and the chain verifies (*PostgreSQL*: real row locks)."""

import asyncio
import uuid

import pytest

from tests.audit.helpers import trail
from tests.factories import auth, make_world

pytestmark = pytest.mark.postgres_only


async def test_concurrent_actions_chain_one_after_another(engine, live_client):
    world = await make_world(engine)
    path = f"/v1/regulator/institutions/{world.institution_id}"
    codes = [f"C{uuid.uuid4().hex[:8]}" for _ in range(6)]

    async def freeze(n: int):
        return await live_client.post(
            f"{path}/{'freeze' if n % 2 else 'unfreeze'}",
            json={"reason": f"r{n}"},
            headers=auth(world.regulator_key),
        )

    async def jurisdiction(code: str):
        return await live_client.post(
            "/v1/jurisdictions", json={"code": code, "name": code}, headers=auth(world.admin_key)
        )

    answers = await asyncio.gather(
        *(freeze(n) for n in range(12)), *(jurisdiction(code) for code in codes)
    )
    assert all(answer.is_success for answer in answers), [a.text for a in answers]
    mine = await trail(live_client, world.admin_key, institution_id=str(world.institution_id))
    seqs = [item["seq"] for item in mine if item["source"] == "action"]
    assert sorted(seqs) == list(range(1, 13))
    # The regulator verifies its institution's chain and the platform's (other tests tamper with
    # chains of their own in this database).
    report = (
        await live_client.get("/v1/regulator/audit/verify", headers=auth(world.regulator_key))
    ).json()
    assert report["intact"] and report["chains_checked"] == 2, report
