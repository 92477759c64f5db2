"""The operator's API keys: issuing them to regulators, institutions, banks and operators,
listing and revoking them."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys.schemas import ApiKeyCreate
from app.auth.cache import keys
from app.auth.service import issue_key
from app.institutions.service import existing_institution
from app.jurisdictions.service import existing_jurisdiction
from app.kit.clock import utcnow
from app.kit.errors import NotFound, Unprocessable
from app.kit.pagination import PageRequest, paginate
from app.models.api_key import ApiKey, Role


class RoleNotIssuable(Unprocessable):
    code = "role_not_issuable"
    title = "Role not issuable here"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    title = "API key not found"


async def issue_operator_key(
    session: AsyncSession, secret: str, body: ApiKeyCreate
) -> tuple[ApiKey, str]:
    """A key the operator hands out: to a regulator, an institution, a bank or another operator.
    The scope it names must exist, so a typo cannot yield a key that sees nothing."""
    if body.role is Role.parent:
        raise RoleNotIssuable("a parent key is issued with its enrollment (POST /v1/enrollments)")
    if body.role is Role.regulator and body.jurisdiction_code is not None:
        await existing_jurisdiction(session, body.jurisdiction_code)
    if body.role is Role.institution and body.institution_id is not None:
        await existing_institution(session, body.institution_id)
    return await issue_key(session, secret, **body.model_dump())


async def page(
    session: AsyncSession, request: PageRequest, role: Role | None
) -> tuple[Sequence[ApiKey], str | None]:
    query = select(ApiKey)
    if role is not None:
        query = query.where(ApiKey.role == role)
    return await paginate(session, query, request, ApiKey.created_at, ApiKey.id)


async def revoke(session: AsyncSession, key_id: UUID) -> ApiKey:
    """Revoked from the next request on. Revoking a revoked key keeps its first revocation time."""
    row = await session.scalar(select(ApiKey).where(ApiKey.id == key_id).with_for_update())
    if row is None:
        raise ApiKeyNotFound(f"no API key {key_id}")
    keys.forget(row.id)  # this process stops accepting it now, the others within the cache's ttl
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row
