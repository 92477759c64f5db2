"""Institutions: onboarding, who may see one, and the regulator's status controls."""

import uuid
from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError

from app.alerts import levels
from app.auth.principal import Principal
from app.db.unique import flush_or_retry
from app.institutions import repository
from app.institutions.errors import (
    InstitutionExists,
    InvalidUscc,
    UnknownInstitution,
)
from app.institutions.schemas import InstitutionCreate
from app.jurisdictions.service import existing_jurisdiction
from app.kit.clock import utcnow
from app.kit.pagination import PageRequest, paginate
from app.ledger.books import institution_books
from app.models import Institution
from app.models.api_key import Role
from app.models.institution import AlertLevel, InstitutionStatus, ListStatus


def valid_uscc(code: str) -> str:
    """The code in its compact form (GB 32100-2015), or 422 saying what is wrong with it."""
    try:
        return uscc.validate(code)
    except ValidationError as error:
        raise InvalidUscc(f"uscc {code!r}: {error}", reason=str(error)) from None


async def create_institution(session: AsyncSession, body: InstitutionCreate) -> Institution:
    """The institution, active, with its ledger accounts opened in the same transaction."""
    code = valid_uscc(body.uscc)
    await existing_jurisdiction(session, body.jurisdiction_code)
    for field, value in (("uscc", code), ("escrow_account_no", body.escrow_account_no)):
        if await session.scalar(select(Institution.id).where(getattr(Institution, field) == value)):
            raise InstitutionExists(f"an institution has {field} {value}", field=field)
    now = utcnow()
    institution = Institution(
        id=uuid.uuid4(),
        **body.model_dump(exclude={"uscc"}),
        uscc=code,
        status=InstitutionStatus.active,
        list_status=ListStatus.none,
        alert_level=AlertLevel.green,
        created_at=now,
        updated_at=now,
    )
    session.add(institution)
    await flush_or_retry(session)
    await institution_books(await session.connection(), institution.id)
    return institution


async def existing_institution(session: AsyncSession, institution_id: UUID) -> Institution:
    """The institution something new is to belong to; 422 when there is none."""
    institution = await session.get(Institution, institution_id)
    if institution is None:
        raise UnknownInstitution(
            f"no institution {institution_id}", institution_id=str(institution_id)
        )
    return institution


async def page(
    session: AsyncSession, caller: Principal, request: PageRequest, jurisdiction_code: str | None
) -> tuple[Sequence[Institution], str | None]:
    """The institutions the caller sees (a regulator: its jurisdiction's), oldest first."""
    query = select(Institution)
    if caller.role is Role.regulator:
        query = query.where(Institution.jurisdiction_code == caller.jurisdiction_code)
    if jurisdiction_code is not None:
        query = query.where(Institution.jurisdiction_code == jurisdiction_code)
    return await paginate(session, query, request, Institution.created_at, Institution.id)


async def _settle_alert_level(
    session: AsyncSession, institution: Institution, *, cause: str, actor: str
) -> None:
    """FROZEN while frozen, revoked or blacklisted (DOMAIN.md, alert levels); lifting the last of
    those returns it to the worst of its open alerts (GREEN when none), never blindly to GREEN.
    The change is recorded with its cause and actor (`alert_level_changes`)."""
    await levels.settle(session, institution, now=utcnow(), cause=cause, actor=actor)


async def _change(
    session: AsyncSession,
    caller: Principal,
    institution_id: UUID,
    *,
    decision: str,
    reason: str | None,
    status: tuple[InstitutionStatus, InstitutionStatus] | None = None,
    list_status: ListStatus | None = None,
) -> Institution:
    """Lock the institution and apply a regulator's decision. `status` is (from, to): only an
    institution in `from` moves, so unfreezing never revives a revoked licence."""
    institution = await repository.visible_institution(session, caller, institution_id, lock=True)
    if status is not None and institution.status == status[0]:
        institution.status = status[1]
    if list_status is not None:
        institution.list_status = list_status
    institution.updated_at = utcnow()
    await session.flush()
    cause = decision if not reason else f"{decision}: {reason}"
    await _settle_alert_level(session, institution, cause=cause, actor=caller.identity)
    return institution


async def freeze(
    session: AsyncSession, caller: Principal, institution_id: UUID, *, reason: str | None = None
) -> Institution:
    """冻结: no new enrollments, no payouts; refunds go on."""
    return await _change(
        session,
        caller,
        institution_id,
        decision="frozen",
        reason=reason,
        status=(InstitutionStatus.active, InstitutionStatus.frozen),
    )


async def unfreeze(
    session: AsyncSession, caller: Principal, institution_id: UUID, *, reason: str | None = None
) -> Institution:
    """Active again; the level is the worst open alert's (still FROZEN if blacklisted)."""
    return await _change(
        session,
        caller,
        institution_id,
        decision="unfrozen",
        reason=reason,
        status=(InstitutionStatus.frozen, InstitutionStatus.active),
    )


async def set_list(
    session: AsyncSession,
    caller: Principal,
    institution_id: UUID,
    list_status: ListStatus,
    *,
    reason: str | None = None,
) -> Institution:
    """White or black list; black holds the institution like a freeze, whatever its status."""
    return await _change(
        session,
        caller,
        institution_id,
        decision=f"list {list_status}",
        reason=reason,
        list_status=list_status,
    )
