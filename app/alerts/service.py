"""Raising alerts. An alert has a key unique within its institution, so raising it again (a bank
message processed twice, a job run twice) changes nothing."""

from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.dialect import insert_for
from app.kit.clock import utcnow
from app.models import Alert
from app.models.alert import AlertKind
from app.models.institution import AlertLevel

MAX_REASON_LENGTH = 500


async def raise_alert(
    session: AsyncSession,
    institution_id: UUID,
    kind: AlertKind,
    level: AlertLevel,
    key: str,
    reason: str,
    *,
    bank_message_id: UUID | None = None,
) -> None:
    """`bank_message_id`: the stored bank message the alert is about, when there is one (its raw
    bytes are the evidence)."""
    connection = await session.connection()
    await connection.execute(
        insert_for(connection, Alert.__table__)
        .values(
            institution_id=institution_id,
            id=uuid4(),
            key=f"{kind}:{key}"[:120],
            kind=kind,
            level=level,
            reason=reason[:MAX_REASON_LENGTH],
            bank_message_id=bank_message_id,
            opened_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["institution_id", "key"])
    )
