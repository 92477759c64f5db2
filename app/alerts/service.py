"""Raising and closing alerts. An alert has a key unique within its institution, so raising it again
(a bank message processed twice, a job run twice) changes nothing. Raising or closing one that bears
on the level (`levels.LEVEL_BEARING`) settles the institution's level in the same transaction, so
every caller moves the level without more code."""

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import levels
from app.db.dialect import insert_for
from app.kit.clock import utcnow
from app.models import Alert
from app.models.alert import AlertKind
from app.models.institution import AlertLevel

MAX_REASON_LENGTH = 500


def full_key(kind: AlertKind, key: str) -> str:
    """The stored key of alert `kind`/`key`."""
    return f"{kind}:{key}"[:120]


async def raise_alert(
    session: AsyncSession,
    institution_id: UUID,
    kind: AlertKind,
    level: AlertLevel,
    key: str,
    reason: str,
    *,
    bank_message_id: UUID | None = None,
    figures: dict[str, Any] | None = None,
    now: datetime | None = None,
    actor: str = "system",
    settle: bool = True,
) -> bool:
    """`bank_message_id`: the stored bank message the alert is about, when there is one (its raw
    bytes are the evidence). `figures`: the numbers that open it. `actor`: who or what raised it,
    recorded with the level change it causes. `settle=False` leaves settling the level to a caller
    that raises several at once. True when the alert is new."""
    now = now or utcnow()
    connection = await session.connection()
    inserted = await connection.execute(
        insert_for(connection, Alert.__table__)
        .values(
            institution_id=institution_id,
            id=uuid4(),
            key=full_key(kind, key),
            kind=kind,
            level=level,
            reason=reason[:MAX_REASON_LENGTH],
            bank_message_id=bank_message_id,
            figures=figures,
            opened_at=now,
        )
        .on_conflict_do_nothing(index_elements=["institution_id", "key"])
        .returning(Alert.__table__.c.id)
    )
    new = inserted.first() is not None
    if new and settle and kind in levels.LEVEL_BEARING:
        await levels.settle_by_id(
            session, institution_id, now=now, cause=f"{kind} opened: {reason}", actor=actor
        )
    return new


async def close_alerts(
    session: AsyncSession,
    institution_id: UUID,
    keys: list[str],
    *,
    now: datetime,
    reason: str,
    actor: str,
    settle: bool = True,
) -> int:
    """Close the open alerts of these stored keys; settle the level when any closed. Returns how
    many closed."""
    if not keys:
        return 0
    result = await session.execute(
        update(Alert)
        .where(
            Alert.institution_id == institution_id,
            Alert.key.in_(keys),
            Alert.closed_at.is_(None),
        )
        .values(closed_at=now)
        .returning(Alert.key)
        .execution_options(synchronize_session=False)
    )
    closed = len(result.all())
    if closed and settle:
        await levels.settle_by_id(
            session, institution_id, now=now, cause=f"closed: {reason}", actor=actor
        )
    return closed
