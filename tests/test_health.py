"""Liveness and readiness probes."""

import httpx

from app.config import Settings
from app.health.endpoints import hold_readiness, release_readiness
from app.main import create_app


async def test_healthz_says_ok(client):
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_says_ready_when_the_database_answers(client):
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok"}


async def test_readyz_is_503_problem_when_the_database_does_not_answer():
    # Nothing listens on port 1: the connection is refused at once.
    app = create_app(Settings(database_url="postgresql://postgres@127.0.0.1:1/absent"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")

    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["code"] == "database_unavailable"
    assert alive.status_code == 200


async def test_readyz_is_503_while_readiness_is_held_and_healthz_stays_alive(app, client):
    hold_readiness(app, "the demo is being seeded")
    try:
        held = await client.get("/readyz")
        assert held.status_code == 503
        assert held.json()["code"] == "not_ready"
        assert held.json()["detail"] == "the demo is being seeded"
        assert (await client.get("/healthz")).status_code == 200
    finally:
        release_readiness(app)

    assert (await client.get("/readyz")).json() == {"status": "ready", "database": "ok"}
