"""A freeze and a payout at once: the payout checks the institution's standing on its row, locked,
so a payout is either made before the freeze took effect or refused with `payouts_suspended`; never
made by an institution already frozen."""

import asyncio
from datetime import datetime
from uuid import UUID

import pytest
from sqlalchemy import select

from app.db.unit import Database
from app.kit.clock import as_utc
from app.models import Institution, Payout
from tests.factories import auth
from tests.payouts.test_payouts import _world_with_money

ROUNDS = 20


async def _payout_and_freeze_moments(
    engine, payout_id: str, institution_id: UUID
) -> tuple[datetime, datetime]:
    async def read(session):
        made = await session.scalar(select(Payout.created_at).where(Payout.id == UUID(payout_id)))
        frozen = await session.scalar(
            select(Institution.updated_at).where(Institution.id == institution_id)
        )
        return as_utc(made), as_utc(frozen)

    return await Database(engine).run(read)


@pytest.mark.postgres_only
async def test_a_payout_never_follows_a_concurrent_freeze(engine, live_client):
    for _ in range(ROUNDS):
        world = await _world_with_money(engine)
        payout, freeze = await asyncio.gather(
            live_client.post(
                "/v1/payouts", json={"amount_fen": 10_000}, headers=auth(world.institution_key)
            ),
            live_client.post(
                f"/v1/regulator/institutions/{world.institution_id}/freeze",
                json={"reason": "closing down"},
                headers=auth(world.regulator_key),
            ),
        )
        assert freeze.status_code == 200, freeze.text
        if payout.status_code == 409:
            assert payout.json()["code"] == "payouts_suspended"
            continue
        assert payout.status_code == 201, payout.text
        made, frozen = await _payout_and_freeze_moments(
            engine, payout.json()["id"], world.institution_id
        )
        assert made < frozen  # the payout committed before the freeze was decided
