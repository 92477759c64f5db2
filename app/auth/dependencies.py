"""FastAPI dependencies: who is calling, and may this role call this endpoint.

A missing or unknown key is 401. Anything outside the caller's scope is 404, so the caller never
learns it exists: an object of another institution, enrollment or jurisdiction (decided by the code
that looks it up), and an endpoint that is not for the caller's role at all (decided here), which
a caller could otherwise use to probe for objects through an endpoint it may not use.
"""

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, ClassVar, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Scope

from app.audit.context import Actor, current_actor
from app.auth import cache as key_cache
from app.auth.keys import key_hash, same_key
from app.auth.principal import (
    AdminPrincipal,
    InstitutionPrincipal,
    ParentPrincipal,
    Principal,
    RegulatorPrincipal,
)
from app.auth.service import principal_for_digest
from app.config import Settings
from app.db.unit import Database
from app.kit.errors import DomainError, NotFound
from app.models.api_key import Role

PRINCIPAL = "principal"  # the authenticated caller, in the request's state


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class NotForRole(NotFound):
    """404, like any object out of scope; the detail says why, to the caller's own key only."""


# Declared as a security scheme so /docs offers "Authorize"; errors stay ours (auto_error off).
_bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Bearer pgk_...`.")


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("send Authorization: Bearer <api key>")
    return credentials.credentials.strip()


async def _principal_for_token(
    settings: Settings, engine: AsyncEngine, token: str
) -> Principal | None:
    admin_key = settings.admin_api_key
    if admin_key is not None and same_key(token, admin_key.get_secret_value()):
        return AdminPrincipal(key_id=None)
    digest = key_hash(settings.secret_key.get_secret_value(), token)
    principal = key_cache.keys.get(digest)
    if principal is None:
        principal = await Database(engine, settings).read(
            lambda session: principal_for_digest(session, digest)
        )
        if principal is not None:
            key_cache.keys.put(digest, principal, tag=principal.key_id)
    return principal


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    principal = getattr(request.state, PRINCIPAL, None)  # authenticated by the idempotency layer
    if principal is None:
        token = _bearer(credentials)
        principal = await _principal_for_token(
            request.app.state.settings, request.app.state.engine, token
        )
        if principal is None:
            raise Unauthorized("the API key is unknown or revoked")
    # What the request moves in the ledger is moved by this key (the audit trail's money side).
    current_actor.set(Actor(str(principal.role), str(principal.key_id or "environment")))
    return principal


async def caller_of(scope: Scope) -> str | None:
    """For the idempotency layer: the caller's identity (the sha256 of its key) once the key is
    known and live, else None. The principal is kept in the request's state for `authenticate`."""
    token = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                token = rest.strip()
    if token is None:
        return None
    state = scope["app"].state
    principal = await _principal_for_token(state.settings, state.engine, token)
    if principal is None:
        return None
    scope.setdefault("state", {})[PRINCIPAL] = principal
    return hashlib.sha256(token.encode()).hexdigest()


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting only callers of `roles`."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise NotForRole(f"nothing here for a {principal.role} key")
        return principal

    return check


P = TypeVar("P", bound=Principal)


def require_one(kind: type[P]) -> Callable[[Principal], Awaitable[P]]:
    """A dependency admitting only callers of one role, handed on as that role's type."""

    async def check(principal: CurrentPrincipal) -> P:
        if not isinstance(principal, kind):
            raise NotForRole(f"nothing here for a {principal.role} key")
        return principal

    return check


Admin = Annotated[AdminPrincipal, Depends(require_one(AdminPrincipal))]
Regulator = Annotated[RegulatorPrincipal, Depends(require_one(RegulatorPrincipal))]
InstitutionCaller = Annotated[InstitutionPrincipal, Depends(require_one(InstitutionPrincipal))]
Parent = Annotated[ParentPrincipal, Depends(require_one(ParentPrincipal))]
AdminOrRegulator = Annotated[Principal, Depends(require(Role.admin, Role.regulator))]
# Who sees institutions' objects (the operator, a regulator, an institution), each within its scope.
InstitutionViewer = Annotated[
    Principal, Depends(require(Role.admin, Role.regulator, Role.institution))
]
