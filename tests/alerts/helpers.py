"""What the alert tests share: an institution's alerts and level history as a user sees them, and
the profile and lessons that make a trigger fire."""

from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.db.unit import Database
from app.models import Alert
from tests.banks.simulated import Simulated
from tests.factories import auth


async def alerts(engine, institution_id) -> list[Alert]:
    """The institution's alerts, oldest first."""
    return list(
        await Database(engine).run(
            lambda s: s.scalars(
                select(Alert)
                .where(Alert.institution_id == institution_id)
                .order_by(Alert.opened_at, Alert.key)
            )
        )
    )


def open_kinds(found: list[Alert]) -> set[str]:
    return {alert.kind for alert in found if alert.closed_at is None}


async def level(sim: Simulated) -> str:
    return (await sim.balance_view())["alert_level"]


async def level_changes(sim: Simulated, headers=None) -> list[dict[str, Any]]:
    response = await sim.service.get(
        f"/v1/regulator/institutions/{sim.institution_id}/level-changes?limit=500",
        headers=headers or sim.regulator,
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def set_profile(sim: Simulated, **profile: Any) -> None:
    """The operator replaces the institution's jurisdiction's profile (the simulated bank's
    jurisdiction pays out the same day and has no floor, kept unless overridden)."""
    institution = await sim.service.get(f"/v1/institutions/{sim.institution_id}", headers=sim.admin)
    code = institution.json()["jurisdiction_code"]
    body = {"min_balance_floor_fen": 0, "release_lag_days": 0, **profile}
    response = await sim.service.put(
        f"/v1/jurisdictions/{code}/profile", headers=sim.admin, json=body
    )
    assert response.status_code == 200, response.text


async def paid_enrollment(sim: Simulated, lessons: int) -> dict[str, Any]:
    enrollment = await sim.enroll(lessons)
    await sim.pay(enrollment["order_no"], enrollment["amount_fen"])
    seen = await sim.service.get(f"/v1/enrollments/{enrollment['id']}", headers=sim.institution)
    assert seen.json()["status"] == "active", seen.text
    return enrollment


async def delivered(sim: Simulated, enrollment: dict[str, Any], count: int, at: datetime) -> None:
    """`count` lessons recorded at `at` and confirmed by the parent: releasable money."""
    for n in range(count):
        lesson = await sim.service.post(
            f"/v1/enrollments/{enrollment['id']}/lessons",
            headers=sim.institution,
            json={
                "lesson_key": f"L{at.timestamp()}-{n}",
                "occurred_at": at.isoformat(),
                "count": 1,
            },
        )
        assert lesson.status_code == 201, lesson.text
        confirmed = await sim.service.post(
            f"/v1/lessons/{lesson.json()['id']}/confirm", headers=auth(enrollment["parent_key"])
        )
        assert confirmed.status_code == 200, confirmed.text


async def payout(sim: Simulated, amount_fen: int | None = None):
    return await sim.service.post(
        "/v1/payouts",
        headers=sim.institution,
        json={} if amount_fen is None else {"amount_fen": amount_fen},
    )
