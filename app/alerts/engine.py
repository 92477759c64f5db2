"""The alert engine (issue 11 item 1): every trigger of DOMAIN.md, the institution's level as the
worst open alert, every level change recorded.

INTERFACE (shared by every part of issue 11; the bodies here are placeholders until it lands):
- `evaluate` re-evaluates the figure-based triggers of one institution inside the caller's unit of
  work and settles its level; call it after anything that changes its figures or settings.
- `close_alert` closes an open alert by its kind and key and settles the level.
- `level_as_of` the level an institution had at a past moment, from the recorded changes."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Alert, Institution
from app.models.alert import AlertKind


async def evaluate(
    session: AsyncSession, institution_id: UUID, as_of: datetime, *, cause: str, actor: str
) -> None:
    """Re-evaluate the institution's figure-based alerts at `as_of` and settle its level; `cause`
    and `actor` are recorded with any level change (e.g. cause "floor set", actor
    "regulator:<key id>")."""
    return None


async def close_alert(
    session: AsyncSession,
    institution_id: UUID,
    kind: AlertKind,
    key: str,
    *,
    now: datetime,
    reason: str,
    actor: str,
) -> bool:
    """Close the open alert `kind`/`key` (the key as given to `raise_alert`); True when one was."""
    result = await session.execute(
        update(Alert)
        .where(
            Alert.institution_id == institution_id,
            Alert.key == f"{kind}:{key}"[:120],
            Alert.closed_at.is_(None),
        )
        .values(closed_at=now)
    )
    return bool(result.rowcount)


async def level_as_of(session: AsyncSession, institution_id: UUID, moment: datetime) -> str:
    """The alert level the institution had at `moment`."""
    return await session.scalar(
        select(Institution.alert_level).where(Institution.id == institution_id)
    )
