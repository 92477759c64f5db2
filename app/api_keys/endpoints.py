from uuid import UUID

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys import service
from app.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from app.audit import service as audit
from app.auth.dependencies import Admin
from app.db.unit import Db
from app.kit.pagination import Page, PageParams
from app.models.api_key import ApiKey, Role

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Issue an API key",
    description=(
        "A key for one role, bound to that role's scope: a `regulator` to a `jurisdiction_code`, "
        "an `institution` to an `institution_id`, a `bank` to a `bank_slug`, an `admin` to "
        "nothing. The key is in the response, once. Refusals: `422 invalid_key_scope` (a scope "
        "missing, or one the role does not take), `422 unknown_jurisdiction`, `422 "
        "unknown_institution`, `422 role_not_issuable` (`parent`: issued with the enrollment). "
        "Operator only."
    ),
)
async def issue_key(body: ApiKeyCreate, caller: Admin, db: Db, request: Request) -> ApiKeyCreated:
    secret = request.app.state.settings.secret_key.get_secret_value()

    async def work(session: AsyncSession) -> tuple[ApiKey, str]:
        row, key = await service.issue_operator_key(session, secret, body)
        await audit.record(
            session,
            "api_key.create",
            actor=caller,
            institution_id=row.institution_id,
            object_type="api_key",
            object_id=row.id,
            details={
                "role": row.role,
                "name": row.name,
                "jurisdiction_code": row.jurisdiction_code,
                "bank_slug": row.bank_slug,
            },
        )
        return row, key

    row, key = await db.run(work)
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.get(
    "",
    response_model=Page[ApiKeyOut],
    summary="API keys",
    description="Every key, revoked ones included, oldest first; never the keys themselves. "
    "Operator only.",
)
async def list_keys(
    caller: Admin, db: Db, page: PageParams, role: Role | None = None
) -> Page[ApiKeyOut]:
    rows, next_cursor = await db.run(lambda session: service.page(session, page, role))
    return Page(items=[ApiKeyOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/{key_id}/revoke",
    response_model=ApiKeyOut,
    summary="Revoke an API key",
    description="The key is refused (401) from the next request on. Revoking a revoked key "
    "changes nothing. Operator only.",
)
async def revoke_key(key_id: UUID, caller: Admin, db: Db) -> ApiKey:
    async def work(session: AsyncSession) -> ApiKey:
        row = await service.revoke(session, key_id)
        await audit.record(
            session,
            "api_key.revoke",
            actor=caller,
            institution_id=row.institution_id,
            object_type="api_key",
            object_id=row.id,
            details={"role": row.role, "jurisdiction_code": row.jurisdiction_code},
        )
        return row

    return await db.run(work)
