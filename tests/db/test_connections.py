"""Pooled connections without a pre-ping: a connection the server closed is replaced at checkout,
and a database that cannot be reached answers 503 problem+json, not 500."""

import httpx
import pytest
from sqlalchemy import text

from app.config import Settings
from app.db.engine import create_engine
from app.kit.clock import utcnow
from app.main import create_app
from tests.factories import auth, make_paid_enrollment, make_world

pytestmark = pytest.mark.postgres_only


APP_POOL = "connections-test-app"  # the application_name of the app's own pooled connections


async def _end_app_connections(database_url: str) -> int:
    """Terminate the app's pooled connections, and nobody else's, from a connection of its own
    (the suite's shared pool is left alone, so no other test finds its connections ended)."""
    outside = create_engine(database_url, pool_size=1)
    try:
        async with outside.connect() as connection:
            return await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": APP_POOL},
            )
    finally:
        await outside.dispose()


async def test_connections_the_server_closed_are_replaced_without_failing_a_request(
    app, engine, database_url
):
    """A read (no transaction) and a write (a transaction) each find the pool's connections
    ended by the server just before, as after a restart."""
    world = await make_world(engine)
    enrollment = await make_paid_enrollment(engine, world, lessons=10)
    headers = auth(world.institution_key)
    path = f"/v1/institutions/{world.institution_id}/balance"
    own_pool = create_engine(
        database_url, connect_args={"server_settings": {"application_name": APP_POOL}}
    )
    app.state.engine, shared = own_pool, app.state.engine
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            assert (await client.get(path, headers=headers)).status_code == 200
            assert await _end_app_connections(database_url) >= 1
            for _ in range(3):
                response = await client.get(path, headers=headers)
                assert response.status_code == 200, response.text

            assert await _end_app_connections(database_url) >= 1
            recorded = await client.post(
                f"/v1/enrollments/{enrollment.id}/lessons",
                headers=headers,
                json={"lesson_key": "after-restart", "occurred_at": utcnow().isoformat()},
            )
            assert recorded.status_code == 201, recorded.text
    finally:
        app.state.engine = shared
        await own_pool.dispose()


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
