"""FastAPI dependencies: who is calling, and may this role call this endpoint.

A missing or unknown key is 401. Anything outside the caller's scope is 404, so the caller never
learns it exists: an object of another institution, enrollment or jurisdiction (decided by the code
that looks it up), and an endpoint that is not for the caller's role at all (decided here), which
a caller could otherwise use to probe for objects through an endpoint it may not use.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.keys import same_key
from app.auth.principal import Principal
from app.auth.service import principal_for_key
from app.config import Settings
from app.kit.errors import DomainError, NotFound
from app.models.api_key import Role


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class NotForRole(NotFound):
    """404, like any object out of scope; the detail says why, to the caller's own key only."""


# Declared as a security scheme so /docs offers "Authorize"; errors stay ours (auto_error off).
_bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Bearer pgk_...`.")


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("send Authorization: Bearer <api key>")
    return credentials.credentials.strip()


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    settings: Settings = request.app.state.settings
    token = _bearer(credentials)
    admin_key = settings.admin_api_key
    if admin_key is not None and same_key(token, admin_key.get_secret_value()):
        return Principal(role=Role.admin, key_id=None)
    async with AsyncSession(request.app.state.engine) as session:
        principal = await principal_for_key(session, settings.secret_key.get_secret_value(), token)
    if principal is None:
        raise Unauthorized("the API key is unknown or revoked")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting only callers of `roles`."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise NotForRole(f"nothing here for a {principal.role} key")
        return principal

    return check


Admin = Annotated[Principal, Depends(require(Role.admin))]
Regulator = Annotated[Principal, Depends(require(Role.regulator))]
InstitutionCaller = Annotated[Principal, Depends(require(Role.institution))]
Parent = Annotated[Principal, Depends(require(Role.parent))]
AdminOrRegulator = Annotated[Principal, Depends(require(Role.admin, Role.regulator))]
# Who sees institutions' objects (the operator, a regulator, an institution), each within its scope.
InstitutionViewer = Annotated[
    Principal, Depends(require(Role.admin, Role.regulator, Role.institution))
]
