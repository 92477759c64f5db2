"""Schemathesis fuzzes every operation of the OpenAPI document with generated requests, as an
operator, an institution and a parent: no request may get a 5xx."""

import asyncio
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi

from app.config import Settings
from app.db.engine import create_engine
from app.main import create_app
from app.models.api_key import Role
from tests.conftest import TEST_DATABASE_URL
from tests.factories import make_key, make_paid_enrollment, make_world

ADMIN_KEY = "fuzz-admin-key-that-is-long-enough-for-any-environment"
app = create_app(Settings(database_url=TEST_DATABASE_URL, admin_api_key=ADMIN_KEY))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


async def _keys() -> dict[str, str]:
    engine = create_engine(TEST_DATABASE_URL)
    world = await make_world(engine)
    enrollment = await make_paid_enrollment(engine, world, released=2)
    parent = await make_key(engine, Role.parent, enrollment_id=enrollment.id)
    await engine.dispose()
    return {"admin": ADMIN_KEY, "institution": world.institution_key, "parent": parent}


@pytest.fixture(scope="module")
def keys(database_url: str) -> dict[str, str]:
    return asyncio.run(_keys())


@pytest.fixture(scope="module")
def fuzz_client(database_url: str) -> Iterator[asgi.ASGIClient]:
    with asgi.get_client(app) as client:  # runs the lifespan once for the whole module
        yield client


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case, keys, fuzz_client):
    for key in keys.values():
        response = case.call(session=fuzz_client, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        )
        if response.status_code >= 400:
            assert response.headers["content-type"][0].startswith("application/problem+json")
            assert "code" in response.json()
