"""FastAPI dependencies: who is calling, and may this role call this endpoint.

A missing or unknown key is 401. A role the endpoint is not for is 403 (the endpoint's existence
is public, in the OpenAPI document). An object outside the caller's scope is 404, decided by the
service that looks it up, so the caller never learns it exists.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.keys import same_key
from app.auth.principal import Principal
from app.auth.service import principal_for_key
from app.config import Settings
from app.kit.errors import DomainError
from app.models.api_key import Role


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <api key>")
    return token.strip()


async def authenticate(request: Request) -> Principal:
    settings: Settings = request.app.state.settings
    token = _bearer(request)
    admin_key = settings.admin_api_key
    if admin_key is not None and same_key(token, admin_key.get_secret_value()):
        return Principal(role=Role.admin, key_id=None)
    async with AsyncSession(request.app.state.engine) as session:
        principal = await principal_for_key(session, settings.secret_key.get_secret_value(), token)
    if principal is None:
        raise Unauthorized("the API key is unknown or revoked")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting only callers of `roles`."""

    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"this endpoint is not for a {principal.role} key")
        return principal

    return check


Admin = Annotated[Principal, Depends(require(Role.admin))]
Regulator = Annotated[Principal, Depends(require(Role.regulator))]
InstitutionCaller = Annotated[Principal, Depends(require(Role.institution))]
Parent = Annotated[Principal, Depends(require(Role.parent))]
AdminOrRegulator = Annotated[Principal, Depends(require(Role.admin, Role.regulator))]
