"""Pooled connections without a pre-ping: a connection the server closed is replaced at checkout,
and a database that cannot be reached answers 503 problem+json, not 500."""

import httpx
import pytest
from sqlalchemy import text

from app.config import Settings
from app.main import create_app
from tests.factories import auth, make_world

pytestmark = pytest.mark.postgres_only


async def test_connections_the_server_closed_are_replaced_without_failing_a_request(app, engine):
    world = await make_world(engine)
    path = f"/v1/institutions/{world.institution_id}/balance"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        # Fill the pool: several requests at once each check a connection out.
        for _ in range(3):
            assert (await client.get(path, headers=auth(world.institution_key))).status_code == 200
        async with engine.connect() as connection:
            ended = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = ''"
                )
            )
        assert ended >= 1
        for _ in range(5):
            response = await client.get(path, headers=auth(world.institution_key))
            assert response.status_code == 200, response.text


async def test_an_unreachable_database_answers_503_problem():
    # Nothing listens on port 1: every connection attempt is refused at once.
    application = create_app(
        Settings(database_url="postgresql://postgres@127.0.0.1:1/none", admin_api_key="a" * 40)
    )
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://test"
        ) as client,
    ):
        response = await client.get("/v1/api-keys", headers=auth("a" * 40))
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "1"
