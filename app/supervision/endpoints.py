"""The regulator's API (API.md, Regulator): the institutions with their balance views, the summary,
the floor, the alerts and the ledger's integrity; and every balance view, now or `as_of`."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import AdminOrRegulator, CurrentPrincipal
from app.auth.principal import Principal
from app.balances.schemas import BalanceView
from app.db.unit import Db, ReadDb
from app.institutions.repository import visible_institution
from app.institutions.schemas import BankSlug
from app.jurisdictions.schemas import JURISDICTION_CODE_PATTERN
from app.kit.clock import as_utc
from app.kit.collector import collector_paused
from app.kit.pagination import Page, PageParams
from app.models import Institution
from app.models.alert import AlertKind
from app.models.institution import AlertLevel
from app.supervision import service
from app.supervision.listing import balance_rows, decode_cursor, encode_cursor
from app.supervision.schemas import (
    AlertOut,
    AlertStatus,
    FloorChange,
    InstitutionBalance,
    LedgerVerification,
    Summary,
)
from app.supervision.views import AsOf, balance_views, visible_balance_view_now

router = APIRouter(tags=["supervision"])

SCOPE = "The operator and the regulator of the institution's jurisdiction; 404 to anyone else."
OPERATOR_JURISDICTION = (
    "The operator sees every jurisdiction, or one with `jurisdiction_code`; a regulator its own "
    "(the parameter cannot widen it)."
)
JurisdictionParam = Annotated[
    str | None,
    Query(pattern=JURISDICTION_CODE_PATTERN, description="The operator's choice of jurisdiction."),
]
BALANCE_DESCRIPTION = (
    "The figures of the minimum-balance rule (DOMAIN.md rule 8): now, or `as_of` a past moment. "
    "Visible to the institution itself, its jurisdiction's regulator and the operator; 404 to "
    "anyone else."
)


async def _view(
    session: AsyncSession, caller: Principal, institution_id: UUID, as_of: datetime | None
) -> BalanceView:
    if as_of is None:
        return await visible_balance_view_now(session, caller, institution_id)
    institution = await visible_institution(session, caller, institution_id)
    [view] = await balance_views(session, [institution], as_of)
    return view


@router.get(
    "/v1/institutions/{institution_id}/balance",
    response_model=BalanceView,
    summary="An institution's balance view",
    description=BALANCE_DESCRIPTION,
)
async def balance(
    institution_id: UUID, caller: CurrentPrincipal, db: Db, as_of: AsOf
) -> BalanceView:
    # The institution's own view reads the primary: it has just paid or recorded, and a
    # replica's lag would hide that from it.
    return await db.read(lambda session: _view(session, caller, institution_id, as_of))


@router.get(
    "/v1/regulator/institutions/{institution_id}/balance",
    response_model=BalanceView,
    summary="An institution's balance view (regulator)",
    description=BALANCE_DESCRIPTION,
)
async def regulator_balance(
    institution_id: UUID, caller: CurrentPrincipal, db: ReadDb, as_of: AsOf
) -> BalanceView:
    return await db.read(lambda session: _view(session, caller, institution_id, as_of))


@router.get(
    "/v1/regulator/institutions",
    response_model=Page[InstitutionBalance],
    summary="Institutions with their balance views (regulator)",
    description=(
        "In id order, each institution with its full balance view (now, or `as_of` a past "
        "moment). Filters: `level` (the alert level now), `q` (a substring of the name or the "
        "USCC), `bank` (the custodian bank's slug). " + OPERATOR_JURISDICTION
    ),
)
async def institutions(
    caller: AdminOrRegulator,
    db: ReadDb,
    page: PageParams,
    as_of: AsOf,
    level: AlertLevel | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    bank: Annotated[BankSlug | None, Query()] = None,
    jurisdiction_code: JurisdictionParam = None,
) -> Response:
    after = decode_cursor(page.cursor) if page.cursor is not None else None
    # A page of 500 makes some 20,000 short-lived objects, none in a cycle: without the pause the
    # cyclic collector walks the whole heap several times a page (a third of its time, measured).
    with collector_paused():
        built = _page(
            await db.run(
                lambda session: balance_rows(
                    session,
                    service.jurisdiction_of(caller, jurisdiction_code),
                    level=level,
                    q=q,
                    bank=bank,
                    as_of=as_of,
                    after=after,
                    limit=page.limit + 1,
                )
            ),
            page.limit,
        )
        # The page is already the response model: serialised once, not validated again on the way
        # out (FastAPI would rebuild every item of a page of 500).
        return Response(content=built.model_dump_json(), media_type="application/json")


def _page(rows: list[tuple[Institution, BalanceView]], limit: int) -> Page[InstitutionBalance]:
    items = [
        InstitutionBalance(
            id=institution.id,
            name=institution.name,
            uscc=institution.uscc,
            license_no=institution.license_no,
            category=institution.category,
            jurisdiction_code=institution.jurisdiction_code,
            bank_slug=institution.bank_slug,
            escrow_account_no=institution.escrow_account_no,
            status=institution.status,
            list_status=institution.list_status,
            alert_level=institution.alert_level,
            min_balance_floor_fen=institution.min_balance_floor_fen,
            created_at=institution.created_at,
            balance=view,
        )
        for institution, view in rows[:limit]
    ]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


@router.get(
    "/v1/regulator/summary",
    response_model=Summary,
    summary="The jurisdiction at a glance (regulator)",
    description=(
        "Institutions, students and enrollments covered, what students are owed (the ledger), "
        "what the banks last reported holding and what the ledger holds, and institutions per "
        "alert level (all four, 0 when none). " + OPERATOR_JURISDICTION
    ),
)
async def summary(
    caller: AdminOrRegulator, db: ReadDb, jurisdiction_code: JurisdictionParam = None
) -> Summary:
    scope = service.jurisdiction_of(caller, jurisdiction_code)
    return await db.run(lambda session: service.summary(session, scope))


@router.put(
    "/v1/regulator/institutions/{institution_id}/floor",
    response_model=BalanceView,
    summary="Set an institution's minimum balance floor",
    description=(
        "`min_balance_floor_fen`: a whole number of fen, 0 or more; `null` returns the "
        "institution to its jurisdiction profile's floor. The institution's alerts are "
        "re-evaluated and the change audited in the same transaction; the answer is its balance "
        "view after. A string, a fraction or a negative number: `422 validation_error`. " + SCOPE
    ),
)
async def set_floor(
    institution_id: UUID, body: FloorChange, caller: AdminOrRegulator, db: Db
) -> BalanceView:
    return await db.run(
        lambda session: service.set_floor(
            session, caller, institution_id, body.min_balance_floor_fen
        )
    )


@router.get(
    "/v1/regulator/alerts",
    response_model=Page[AlertOut],
    summary="Alerts, open and closed (regulator)",
    description=(
        "Oldest first, by the moment each opened. Filters: `status` (`open` or `closed`), "
        "`level`, `kind`, `institution_id` (404 when it is not the caller's to see), and the "
        "moment it opened: `since` (included) and `until` (excluded), ISO 8601 with offset. "
        "A regulator sees its jurisdiction's alerts, the operator all."
    ),
)
async def alerts(
    caller: AdminOrRegulator,
    db: ReadDb,
    page: PageParams,
    status: AlertStatus | None = None,
    level: AlertLevel | None = None,
    kind: AlertKind | None = None,
    institution_id: UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[AlertOut]:
    items, next_cursor = await db.run(
        lambda session: service.alerts_page(
            session,
            caller,
            page,
            status=status,
            level=level,
            kind=kind,
            institution_id=institution_id,
            since=as_utc(since) if since else None,
            until=as_utc(until) if until else None,
        )
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/v1/regulator/ledger/verify",
    response_model=Page[LedgerVerification],
    summary="Verify ledgers' integrity (regulator)",
    description=(
        "Whether each institution's journal is intact (every entry's digest and link recomputed, "
        "balances, transfers and enrollments equal to it) and up to which entry, with its latest "
        "published checkpoint compared (`matches`, `disagrees`, `none`). With `institution_id` "
        "that one institution (404 when not the caller's to see), else every institution of the "
        "caller's jurisdiction (the operator: all, or one `jurisdiction_code`), in id order, "
        "`limit` of them per page: each page reads those journals whole, so a smaller `limit` "
        "answers sooner."
    ),
)
async def verify_ledgers(
    caller: AdminOrRegulator,
    db: ReadDb,
    page: PageParams,
    institution_id: UUID | None = None,
    jurisdiction_code: JurisdictionParam = None,
) -> Page[LedgerVerification]:
    if institution_id is not None:
        await db.run(lambda session: visible_institution(session, caller, institution_id))
        return Page(items=[await service.verify(db.engine, institution_id)], next_cursor=None)
    after = decode_cursor(page.cursor) if page.cursor is not None else None
    scope = service.jurisdiction_of(caller, jurisdiction_code)
    ids = await db.run(
        lambda session: service.institutions_to_verify(session, scope, after, page.limit + 1)
    )
    items = [await service.verify(db.engine, i) for i in ids[: page.limit]]
    more = len(ids) > page.limit
    return Page(items=items, next_cursor=encode_cursor(items[-1].institution_id) if more else None)
