"""Worlds for the regulator's tests: several institutions of one jurisdiction, money moved through
the services as the API and a verified bank payment would move it."""

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.api_key import Role
from tests.factories import World, make_institution, make_jurisdiction, make_key


async def add_institution(engine: AsyncEngine, world: World, **fields: Any) -> World:
    """Another institution of `world`'s jurisdiction, as a world of its own (same regulator)."""
    # Not from `random`: Hypothesis seeds it alike for every example.
    fields.setdefault("escrow_account_no", f"6222{uuid.uuid4().int % 10**15:015d}")
    institution = await make_institution(engine, world.jurisdiction_code, **fields)
    return replace(
        world,
        institution_id=institution.id,
        escrow_account_no=institution.escrow_account_no,
        institution_key=await make_key(engine, Role.institution, institution_id=institution.id),
    )


async def fresh_world(engine: AsyncEngine, **profile: Any) -> World:
    """`make_world`, safe under Hypothesis (see `add_institution`)."""
    code = await make_jurisdiction(engine, **profile)
    admin = await make_key(engine, Role.admin)
    regulator = await make_key(engine, Role.regulator, jurisdiction_code=code)
    return await add_institution(engine, World(code, uuid.uuid4(), "", "", regulator, admin))


async def county(engine: AsyncEngine, size: int, **profile: Any) -> list[World]:
    """`size` institutions of one new jurisdiction."""
    first = await fresh_world(engine, **profile)
    return [first] + [await add_institution(engine, first) for _ in range(size - 1)]
