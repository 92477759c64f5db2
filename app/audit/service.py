"""The audit trail: who did what, when, and from which address (issue 11 item 5).

INTERFACE (shared by every part of issue 11): `record` is called inside the unit of work of the
action it records, so the action and its record commit together or not at all."""

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal


async def record(
    session: AsyncSession,
    action: str,
    *,
    actor: Principal | str,
    institution_id: UUID | None = None,
    object_type: str | None = None,
    object_id: UUID | str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record `action` (e.g. "institution.freeze", "floor.set", "wind_down.start") by `actor` (the
    caller's principal, or the name of a job or bank such as "job:evaluate_alerts"), about the
    institution and object named, with `details` (JSON-able: a reason, amounts in fen). The address
    is the current request's (`app.audit.context.client_address`)."""
    # Stub until the audit trail lands: records nothing.
    return None
