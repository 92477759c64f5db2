"""Jurisdictions: a supervising area and its rule profile."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.db.unique import flush_or_retry
from app.jurisdictions.errors import (
    JurisdictionExists,
    JurisdictionNotFound,
    UnknownJurisdiction,
)
from app.jurisdictions.profile import RuleProfile, profiles
from app.jurisdictions.schemas import JurisdictionCreate
from app.kit.clock import utcnow
from app.models import Jurisdiction
from app.models.api_key import Role


async def create_jurisdiction(session: AsyncSession, body: JurisdictionCreate) -> Jurisdiction:
    if await session.get(Jurisdiction, body.code) is not None:
        raise JurisdictionExists(f"jurisdiction {body.code} exists", jurisdiction_code=body.code)
    now = utcnow()
    jurisdiction = Jurisdiction(
        code=body.code,
        name=body.name,
        profile=body.profile.model_dump(),
        created_at=now,
        updated_at=now,
    )
    session.add(jurisdiction)
    await flush_or_retry(session)
    return jurisdiction


def _sees(principal: Principal, code: str) -> bool:
    return principal.role is Role.admin or principal.jurisdiction_code == code


async def visible_jurisdiction(
    session: AsyncSession, caller: Principal, code: str, *, for_update: bool = False
) -> Jurisdiction:
    """The jurisdiction, to the operator and its own regulator; 404 to anyone else."""
    query = select(Jurisdiction).where(Jurisdiction.code == code)
    if for_update:
        query = query.with_for_update()
    jurisdiction = await session.scalar(query) if _sees(caller, code) else None
    if jurisdiction is None:
        raise JurisdictionNotFound(f"no jurisdiction {code}")
    return jurisdiction


async def replace_profile(
    session: AsyncSession, caller: Principal, code: str, profile: RuleProfile
) -> RuleProfile:
    jurisdiction = await visible_jurisdiction(session, caller, code, for_update=True)
    profiles.forget(code)  # this process reads the new one from now on, the others within ttl
    jurisdiction.profile = profile.model_dump()
    jurisdiction.updated_at = utcnow()
    await session.flush()
    return profile


async def existing_jurisdiction(session: AsyncSession, code: str) -> Jurisdiction:
    """The jurisdiction something new is to belong to; 422 when there is none."""
    jurisdiction = await session.get(Jurisdiction, code)
    if jurisdiction is None:
        raise UnknownJurisdiction(f"no jurisdiction {code}", jurisdiction_code=code)
    return jurisdiction
