"""The demo the README's run command seeds: every enrollment state, once, on an empty database."""

import asyncio

import httpx

from app.config import Settings
from app.db import migrate
from app.demo import seed
from app.main import create_app
from tests.factories import auth


async def _seeded(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    app = create_app(Settings(database_url=url))
    return app


async def test_demo_has_every_enrollment_state_and_seeds_once(tmp_path):
    app = await _seeded(tmp_path)
    async with app.router.lifespan_context(app):
        keys = await seed(app)
        assert keys is not None
        assert await seed(app) is None  # the database has data now
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            listed = await client.get("/v1/enrollments?limit=50", headers=auth(keys.institution))
            assert listed.status_code == 200, listed.text
            states = {item["status"] for item in listed.json()["items"]}
            assert states == {"awaiting_payment", "active", "completed", "refunded", "cancelled"}
            balance = await client.get(
                f"/v1/institutions/{keys.institution_id}/balance", headers=auth(keys.regulator)
            )
            view = balance.json()
            assert view["in_transit_fen"] > 0 and view["releasable_fen"] >= 0
            mine = await client.get(
                f"/v1/enrollments/{keys.active_enrollment_id}", headers=auth(keys.parent_active)
            )
            assert mine.json()["lessons_disputed"] == 1 and mine.json()["lessons_consumed"] == 4
