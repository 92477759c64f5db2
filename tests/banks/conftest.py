"""Fixtures of the bank tests."""

import uuid

import pytest

from app.models.api_key import Role
from bank_simulator.keys import bank_keys
from tests.banks.gm_bank import GmBank
from tests.factories import (
    World,
    auth,
    make_institution,
    make_jurisdiction,
    make_key,
)


@pytest.fixture
async def gm(engine, client) -> GmBank:
    keys = bank_keys("gmbank")
    slug = f"gm-{uuid.uuid4().hex[:10]}"
    admin = auth(await make_key(engine, Role.admin))
    put = await client.put(
        f"/v1/banks/{slug}",
        headers=admin,
        json={
            "adapter": "gmbank",
            "base_url": "http://127.0.0.1:9/bank",
            "config": keys.service_config,
        },
    )
    assert put.status_code == 200, put.text
    assert "private_key_hex" in put.json()["configured"]
    assert keys.service_config["private_key_hex"] not in put.text
    code = await make_jurisdiction(engine, min_balance_floor_fen=0, release_lag_days=0)
    school = await make_institution(engine, code, bank_slug=slug)
    world = World(
        jurisdiction_code=code,
        institution_id=school.id,
        escrow_account_no=school.escrow_account_no,
        institution_key=await make_key(engine, Role.institution, institution_id=school.id),
        regulator_key=await make_key(engine, Role.regulator, jurisdiction_code=code),
        admin_key=await make_key(engine, Role.admin),
    )
    return GmBank(
        slug,
        keys.service_config["app_id"],
        keys.simulator_config["bank_private_key_hex"],
        world,
        keys.service_config,
    )
