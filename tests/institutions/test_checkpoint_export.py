"""Regulators keep a copy of each institution's daily ledger checkpoints, through the API."""

from app.kit.clock import utcnow
from app.ledger import service as ledger
from tests.factories import auth, make_paid_enrollment, make_world


async def test_a_regulator_reads_the_checkpoints_the_job_published_and_no_one_else_does(
    client, engine
):
    world = await make_world(engine)
    await make_paid_enrollment(engine, world, lessons=10)
    published = await client.post(
        "/v1/admin/jobs/checkpoint_ledgers",
        json={"as_of": utcnow().isoformat()},
        headers=auth(world.admin_key),
    )
    assert published.status_code == 200, published.text
    async with engine.connect() as connection:
        [kept] = await ledger.checkpoints(connection, world.institution_id)
    path = f"/v1/regulator/institutions/{world.institution_id}/ledger/checkpoints"

    listed = await client.get(path, headers=auth(world.regulator_key))

    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["day"], item["seq"], item["hash"]) == (kept.day.isoformat(), kept.seq, kept.hash)
    assert kept.seq > 0
    stranger = await make_world(engine)
    for outsider in (stranger.regulator_key, world.institution_key):
        refused = await client.get(path, headers=auth(outsider))
        assert refused.status_code == 404
