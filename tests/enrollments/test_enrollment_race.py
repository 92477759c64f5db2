"""A freeze and an enrollment at once: the enrollment reads the institution's standing under a
share lock, so it is either made before the freeze took effect or refused with
`institution_frozen`; never made by an institution already frozen."""

import asyncio
from datetime import datetime
from uuid import UUID

import pytest
from sqlalchemy import select

from app.db.unit import Database
from app.kit.clock import as_utc
from app.models import Enrollment, Institution
from tests.enrollments.helpers import enrollment_body, make_course
from tests.factories import auth, make_world

ROUNDS = 20


async def _enrolled_and_frozen_moments(
    engine, enrollment_id: str, institution_id: UUID
) -> tuple[datetime, datetime]:
    async def read(session):
        made = await session.scalar(
            select(Enrollment.created_at).where(Enrollment.id == UUID(enrollment_id))
        )
        frozen = await session.scalar(
            select(Institution.updated_at).where(Institution.id == institution_id)
        )
        return as_utc(made), as_utc(frozen)

    return await Database(engine).run(read)


@pytest.mark.postgres_only
async def test_an_enrollment_never_follows_a_concurrent_freeze(engine, live_client):
    refused = 0
    for _ in range(ROUNDS):
        world = await make_world(engine)
        course = await make_course(live_client, world)
        enrollment, freeze = await asyncio.gather(
            live_client.post(
                "/v1/enrollments",
                json=enrollment_body(course["id"], lessons=10),
                headers=auth(world.institution_key),
            ),
            live_client.post(
                f"/v1/regulator/institutions/{world.institution_id}/freeze",
                json={"reason": "closing down"},
                headers=auth(world.regulator_key),
            ),
        )
        assert freeze.status_code == 200, freeze.text
        if enrollment.status_code == 409:
            assert enrollment.json()["code"] == "institution_frozen"
            refused += 1
            continue
        assert enrollment.status_code == 201, enrollment.text
        made, frozen = await _enrolled_and_frozen_moments(
            engine, enrollment.json()["id"], world.institution_id
        )
        assert made < frozen  # the enrollment committed before the freeze was decided
