from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.context import Actor, acting_as
from app.auth.dependencies import AdminOrRegulator, InstitutionViewer
from app.auth.principal import Principal
from app.banks.endpoints import Slug, inbound_request
from app.db.unit import Db
from app.errors import documented_problem
from app.institutions.repository import visible_institution
from app.kit.clock import utcnow
from app.kit.pagination import PageParams, PageRequest
from app.models.reconciliation import BreakStatus, BreakType, ReconciliationBreak, RunStatus
from app.reconciliation import breaks, service
from app.reconciliation.intake import receive_statement
from app.reconciliation.schemas import (
    BreakClose,
    BreakItem,
    BreakPage,
    RunOut,
    RunPage,
    StatementReceived,
)

router = APIRouter(tags=["reconciliation"])


@router.post(
    "/v1/banks/{slug}/statements",
    response_model=StatementReceived,
    summary="A bank's daily statement of an escrow account (called by the bank)",
    description=(
        "The statement file in the bank's own format, authenticated by the bank's signature "
        "(ums: `X-File-Signature`; the others as their notifications). Stored raw, then read and "
        "reconciled: the answer names the run, with its breaks. The same file again answers its "
        "first run (`replayed`), changing nothing. Refusals: `401 bad_signature` (kept as a "
        "security event, nothing else recorded), `422 statement_malformed` naming the `line`, "
        "`422 unknown_escrow_account` (no institution at this bank holds the account; the file is "
        "kept for the operator), `422 statement_in_future`. Files up to 64 MiB."
    ),
)
async def receive(slug: Slug, request: Request, db: Db) -> StatementReceived:
    inbound, remote = await inbound_request(request)
    with acting_as(Actor("bank", slug)):  # what the statement moves, the bank moved
        intake = await receive_statement(db, slug, inbound, remote)
    breaks = await db.run(lambda session: service.breaks_of(session, [intake.run]))
    run = RunOut.of(intake.run, breaks[intake.run.id])
    return StatementReceived(**run.model_dump(), replayed=intake.replayed)


async def _page(
    session: AsyncSession,
    caller: Principal,
    page: PageRequest,
    institution_id: UUID | None,
    statement_date: date | None,
    status: RunStatus | None,
) -> RunPage:
    runs, next_cursor = await service.page(
        session,
        caller,
        page,
        institution_id=institution_id,
        statement_date=statement_date,
        status=status,
    )
    breaks = await service.breaks_of(session, runs)
    return RunPage(items=[RunOut.of(run, breaks[run.id]) for run in runs], next_cursor=next_cursor)


@router.get(
    "/v1/regulator/reconciliations",
    response_model=RunPage,
    summary="Reconciliation runs with their breaks (regulator)",
    description=(
        "Every run of the jurisdiction's institutions (the operator: all), oldest first, each with "
        "its breaks; filters `institution_id`, `statement_date`, `status`."
    ),
)
async def regulator_runs(
    caller: AdminOrRegulator,
    db: Db,
    page: PageParams,
    institution_id: UUID | None = None,
    statement_date: Annotated[date | None, Query()] = None,
    status: RunStatus | None = None,
) -> RunPage:
    return await db.run(
        lambda session: _page(session, caller, page, institution_id, statement_date, status)
    )


@router.get(
    "/v1/institutions/{institution_id}/reconciliations",
    response_model=RunPage,
    summary="An institution's reconciliation runs with their breaks",
    description=(
        "The runs of the institution's escrow account, oldest first, each with its breaks: to the "
        "institution itself, its regulator and the operator; 404 to anyone else."
    ),
)
async def institution_runs(
    institution_id: UUID,
    caller: InstitutionViewer,
    db: Db,
    page: PageParams,
    statement_date: Annotated[date | None, Query()] = None,
    status: RunStatus | None = None,
) -> RunPage:
    async def work(session: AsyncSession) -> RunPage:
        await visible_institution(session, caller, institution_id)
        return await _page(session, caller, page, institution_id, statement_date, status)

    return await db.run(work)


@router.get(
    "/v1/regulator/reconciliations/breaks",
    response_model=BreakPage,
    summary="Reconciliation breaks across runs (regulator)",
    description=(
        "Every break of the jurisdiction's institutions (the operator: all), oldest opened first, "
        "each with its `institution_id` and `run_id`; filters `institution_id`, `status` (`open` "
        "finds what is still to settle), `type`."
    ),
)
async def regulator_breaks(
    caller: AdminOrRegulator,
    db: Db,
    page: PageParams,
    institution_id: UUID | None = None,
    status: BreakStatus | None = None,
    type: BreakType | None = None,
) -> BreakPage:
    rows, next_cursor = await db.run(
        lambda session: breaks.page(
            session, caller, page, institution_id=institution_id, status=status, break_type=type
        )
    )
    return BreakPage(items=[BreakItem.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/v1/regulator/reconciliations/breaks/{break_id}/close",
    response_model=BreakItem,
    summary="Close a reconciliation break by hand, with a note",
    description=(
        "For a difference settled outside the service (the bank corrected it, or it is "
        "explained): the break closes in the caller's name (`closed_by`: the key's role and id), "
        "now, with the `note`, and so does the YELLOW alert it raised once a day old. The "
        "operator, or the regulator of the break's institution: `404 break_not_found` to a "
        "regulator of another jurisdiction, `404` to any other role. `409 break_closed` when it "
        "is closed already (nothing changes)."
    ),
    responses={
        404: documented_problem("`break_not_found`"),
        409: documented_problem("`break_closed`"),
    },
)
async def close_break(
    break_id: UUID, body: BreakClose, caller: AdminOrRegulator, db: Db
) -> BreakItem:
    async def work(session: AsyncSession) -> ReconciliationBreak:
        closed = await breaks.close_by_hand(session, caller, break_id, body.note, utcnow())
        await audit.record(
            session,
            "reconciliation_break.close",
            actor=caller,
            institution_id=closed.institution_id,
            object_type="reconciliation_break",
            object_id=closed.id,
            details={"note": body.note, "type": str(closed.type)},
        )
        return closed

    closed = await db.run(work)
    return BreakItem.model_validate(closed)
