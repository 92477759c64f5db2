"""Jurisdictions and their rule profile through the API: defaults, validation, scope, duplicates."""

import asyncio
import uuid

import pytest

from app.jurisdictions.profile import RuleProfile
from app.models.api_key import Role
from tests.factories import auth, make_institution, make_jurisdiction, make_key

DEFAULTS = RuleProfile().model_dump()


def new_code() -> str:
    return f"JT-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def admin(engine):
    return auth(await make_key(engine, Role.admin))


async def create(client, admin, **body):
    return await client.post("/v1/jurisdictions", headers=admin, json=body)


def test_the_defaults_are_those_of_domain_md():
    assert DEFAULTS == {
        "max_prepaid_months": 3,
        "max_prepaid_lessons": 60,
        "max_prepaid_amount_fen": 500_000,
        "renewal_min_remaining_lessons": 20,
        "parent_auto_confirm_workdays": 15,
        "max_lesson_backdate_days": 7,
        "release_lag_days": 1,
        "institution_refund_response_workdays": 5,
        "holdback_pct": 0,
        "holdback_months": 3,
        "min_balance_floor_fen": 0,
        "min_balance_pct_of_unconsumed": 0,
        "monthly_payout_cap_floor_multiple": None,
        "large_outflow_fen": 5_000_000,
        "daily_outflow_pct": 30,
        "consumption_spike_factor": 3,
        "topup_deadline_workdays": 5,
        "complaint_burst_count": 5,
        "complaint_burst_days": 7,
        "unpaid_enrollment_expiry_minutes": 1440,
    }


async def test_the_operator_onboards_a_jurisdiction_and_omitted_parameters_take_defaults(
    client, admin
):
    code = new_code()
    created = await create(
        client, admin, code=code, name="  Haidian  ", profile={"min_balance_floor_fen": 100_000}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["code"] == code
    assert body["name"] == "Haidian"
    assert body["profile"] == {**DEFAULTS, "min_balance_floor_fen": 100_000}
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")

    read = await client.get(f"/v1/jurisdictions/{code}", headers=admin)
    assert read.status_code == 200
    assert read.json() == body


async def test_a_jurisdiction_without_a_profile_has_every_default(client, admin):
    created = await create(client, admin, code=new_code(), name="Default county")
    assert created.status_code == 201, created.text
    assert created.json()["profile"] == DEFAULTS


async def test_its_regulator_reads_it(client, engine, admin):
    code = await make_jurisdiction(engine, max_prepaid_lessons=40)
    regulator = auth(await make_key(engine, Role.regulator, jurisdiction_code=code))
    read = await client.get(f"/v1/jurisdictions/{code}", headers=regulator)
    assert read.status_code == 200
    assert read.json()["profile"]["max_prepaid_lessons"] == 40


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({"max_prepaid_amount_fen": -1}, "max_prepaid_amount_fen"),
        ({"min_balance_floor_fen": -1}, "min_balance_floor_fen"),
        ({"max_prepaid_lessons": 0}, "max_prepaid_lessons"),
        ({"holdback_pct": 101}, "holdback_pct"),
        ({"min_balance_pct_of_unconsumed": 101}, "min_balance_pct_of_unconsumed"),
        ({"daily_outflow_pct": -1}, "daily_outflow_pct"),
        ({"max_prepaid_month": 3}, "max_prepaid_month"),  # a typo is not a default left in force
        ({"max_prepaid_months": "3"}, "max_prepaid_months"),
        ({"max_prepaid_amount_fen": 5000.5}, "max_prepaid_amount_fen"),
        ({"monthly_payout_cap_floor_multiple": -2}, "monthly_payout_cap_floor_multiple"),
    ],
)
async def test_an_invalid_profile_is_refused_naming_the_field_and_nothing_is_created(
    client, admin, profile, field
):
    code = new_code()
    response = await create(client, admin, code=code, name="Bad", profile=profile)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert ["body", "profile", field] in [error["loc"][:3] for error in problem["errors"]]
    assert (await client.get(f"/v1/jurisdictions/{code}", headers=admin)).status_code == 404


async def test_a_percentage_of_100_is_accepted(client, admin):
    profile = {"holdback_pct": 100, "min_balance_pct_of_unconsumed": 100, "daily_outflow_pct": 100}
    created = await create(client, admin, code=new_code(), name="Strict", profile=profile)
    assert created.status_code == 201, created.text
    assert created.json()["profile"] == {**DEFAULTS, **profile}


@pytest.mark.parametrize("code", ["", "x" * 33, "has space", "县", "a/b", "a.b"])
async def test_a_malformed_code_is_refused(client, admin, code):
    response = await create(client, admin, code=code, name="Bad code")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_name_with_a_control_character_is_refused(client, admin):
    response = await create(client, admin, code=new_code(), name="Hai\x00dian")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_malformed_code_in_a_path_is_refused(client, admin):
    response = await client.get("/v1/jurisdictions/a%00b", headers=admin)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_code_of_32_allowed_characters_is_accepted(client, admin):
    code = f"Ab_-{uuid.uuid4().hex}"[:32]
    assert len(code) == 32
    assert (await create(client, admin, code=code, name="Long")).status_code == 201


async def test_a_code_in_use_is_refused_and_the_first_is_kept(client, admin):
    code = new_code()
    assert (await create(client, admin, code=code, name="First")).status_code == 201
    again = await create(client, admin, code=code, name="Second", profile={"holdback_pct": 5})
    assert again.status_code == 409
    assert again.json()["code"] == "jurisdiction_exists"
    kept = (await client.get(f"/v1/jurisdictions/{code}", headers=admin)).json()
    assert kept["name"] == "First"
    assert kept["profile"] == DEFAULTS


async def test_concurrent_creations_of_one_code_make_one_jurisdiction(client, admin):
    code = new_code()
    responses = await asyncio.gather(
        *(create(client, admin, code=code, name=f"Racer {n}") for n in range(10))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 9, [response.text for response in responses]
    winner = next(response.json() for response in responses if response.status_code == 201)
    assert (await client.get(f"/v1/jurisdictions/{code}", headers=admin)).json() == winner


async def test_the_regulator_replaces_its_profile_and_omitted_parameters_go_back_to_defaults(
    client, engine
):
    code = await make_jurisdiction(engine, max_prepaid_lessons=40, holdback_pct=10)
    regulator = auth(await make_key(engine, Role.regulator, jurisdiction_code=code))
    replaced = await client.put(
        f"/v1/jurisdictions/{code}/profile",
        headers=regulator,
        json={"min_balance_floor_fen": 200_000, "monthly_payout_cap_floor_multiple": 2},
    )
    assert replaced.status_code == 200, replaced.text
    expected = {
        **DEFAULTS,
        "min_balance_floor_fen": 200_000,
        "monthly_payout_cap_floor_multiple": 2,
    }
    assert replaced.json() == expected
    read = await client.get(f"/v1/jurisdictions/{code}", headers=regulator)
    assert read.json()["profile"] == expected


async def test_an_invalid_replacement_changes_nothing(client, engine, admin):
    code = await make_jurisdiction(engine, holdback_pct=10)
    for profile in ({"holdback_pct": 101}, {"holdback_pct": 20, "unknown_rule": 1}):
        response = await client.put(
            f"/v1/jurisdictions/{code}/profile", headers=admin, json=profile
        )
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
    read = await client.get(f"/v1/jurisdictions/{code}", headers=admin)
    assert read.json()["profile"] == {**DEFAULTS, "holdback_pct": 10}


async def test_another_jurisdiction_and_other_roles_get_404_and_change_nothing(
    client, engine, admin
):
    code = await make_jurisdiction(engine, holdback_pct=10)
    other = await make_jurisdiction(engine)
    institution = await make_institution(engine, code)
    outsiders = {
        "other regulator": await make_key(engine, Role.regulator, jurisdiction_code=other),
        "institution of it": await make_key(
            engine, Role.institution, institution_id=institution.id
        ),
        "bank": await make_key(engine, Role.bank, bank_slug="ums"),
    }
    for who, key in outsiders.items():
        read = await client.get(f"/v1/jurisdictions/{code}", headers=auth(key))
        assert read.status_code == 404, who
        put = await client.put(
            f"/v1/jurisdictions/{code}/profile", headers=auth(key), json={"holdback_pct": 50}
        )
        assert put.status_code == 404, who
        created = await create(client, auth(key), code=new_code(), name="Not mine")
        assert created.status_code == 404, who
    read = await client.get(f"/v1/jurisdictions/{code}", headers=admin)
    assert read.json()["profile"]["holdback_pct"] == 10


async def test_an_unknown_jurisdiction_is_404(client, admin):
    for response in (
        await client.get(f"/v1/jurisdictions/{new_code()}", headers=admin),
        await client.put(f"/v1/jurisdictions/{new_code()}/profile", headers=admin, json={}),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "jurisdiction_not_found"


async def test_without_a_valid_key_it_is_401(client, engine):
    code = await make_jurisdiction(engine)
    assert (await client.get(f"/v1/jurisdictions/{code}")).status_code == 401
    wrong = await client.get(f"/v1/jurisdictions/{code}", headers=auth("pgk_not-a-key"))
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "unauthorized"
    refused = await client.post("/v1/jurisdictions", json={"code": new_code(), "name": "x"})
    assert refused.status_code == 401
