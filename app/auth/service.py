"""Issuing and resolving API keys: the part every other package may use (the operator's API over
keys is app.api_keys)."""

import uuid
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.keys import key_hash, new_key
from app.auth.principal import Principal, principal_of
from app.kit.clock import utcnow
from app.kit.errors import Unprocessable
from app.models.api_key import ApiKey, Role

# Which scope column each role must carry, and only that one.
SCOPE_OF_ROLE = {
    Role.admin: None,
    Role.regulator: "jurisdiction_code",
    Role.institution: "institution_id",
    Role.parent: "enrollment_id",
    Role.bank: "bank_slug",
}
SCOPE_COLUMNS = ("jurisdiction_code", "institution_id", "enrollment_id", "bank_slug")


class InvalidKeyScope(Unprocessable):
    code = "invalid_key_scope"
    title = "Invalid key scope"


async def issue_key(
    session: AsyncSession,
    secret: str,
    *,
    role: Role,
    name: str,
    jurisdiction_code: str | None = None,
    institution_id: UUID | None = None,
    enrollment_id: UUID | None = None,
    bank_slug: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `role`, bound to the one scope that role has. Returns the stored row and the
    key itself, which is never stored and cannot be shown again."""
    scope = {
        "jurisdiction_code": jurisdiction_code,
        "institution_id": institution_id,
        "enrollment_id": enrollment_id,
        "bank_slug": bank_slug,
    }
    wanted = SCOPE_OF_ROLE[role]
    for column in SCOPE_COLUMNS:
        if column == wanted and scope[column] is None:
            raise InvalidKeyScope(f"a {role} key needs {column}")
        if column != wanted and scope[column] is not None:
            raise InvalidKeyScope(f"a {role} key takes no {column}")
    plaintext = new_key()
    row = ApiKey(
        id=uuid.uuid4(),
        name=name,
        role=role,
        key_hash=key_hash(secret, plaintext),
        key_prefix=plaintext[:12],
        created_at=utcnow(),
        **scope,
    )
    session.add(row)
    await session.flush()
    return row, plaintext


async def principal_for_key(session: AsyncSession, secret: str, key: str) -> Principal | None:
    return await principal_for_digest(session, key_hash(secret, key))


async def principal_for_digest(session: AsyncSession, digest: str) -> Principal | None:
    """The live key stored under `digest` (its keyed hash), as a principal."""
    row = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    )
    if row is None:
        return None
    return principal_of(
        Role(row.role),
        row.id,
        jurisdiction_code=row.jurisdiction_code,
        institution_id=row.institution_id,
        enrollment_id=row.enrollment_id,
        bank_slug=row.bank_slug,
    )
