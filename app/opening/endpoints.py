"""The operator's import of opening balances over HTTP: the same CSV and the same checks as
`prepaid-guard import-opening-balances` (docs/opening-balances.md), for a file under the API's body
limit (1 MiB, some five thousand students); larger files go through the command."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from app.auth.dependencies import Admin
from app.db.unit import Db
from app.errors import documented_problem
from app.kit.clock import utcnow
from app.opening.service import import_opening_balances

router = APIRouter(tags=["institutions"])


class RowNote(BaseModel):
    row: int = Field(description="The row as a spreadsheet numbers it: the heading row is 1.")
    column: str
    reason: str


class ImportedEnrollment(BaseModel):
    row: int
    enrollment_id: UUID
    order_no: str
    parent_key: str = Field(description="The parent's key, shown this once.")


class OpeningImportOut(BaseModel):
    import_id: UUID | None = Field(description="None for a dry run.")
    file_sha256: str
    rows: int
    total_fen: int
    dry_run: bool
    replayed: bool = Field(description="The same file was imported before: nothing changed.")
    warnings: list[RowNote] = Field(description="Rows above the prepay cap, imported all the same.")
    enrollments: list[ImportedEnrollment]


@router.post(
    "/v1/institutions/{institution_id}/opening-balances",
    status_code=201,
    response_model=OpeningImportOut,
    summary="Import opening balances (存量)",
    description=(
        "The body is the CSV of docs/opening-balances.md (`Content-Type: text/csv`, UTF-8 with or "
        "without a BOM): students who paid before onboarding, their remaining lessons and "
        "unconsumed money. Imported whole or not at all, as active enrollments credited by "
        "`opening_balance` journal entries, when the total equals the escrow account's first "
        "statement's opening balance less what the ledger and earlier imports hold. `201` with "
        "each enrollment's parent key (shown once); `200` for `dry_run=true` (nothing written) or "
        "a file imported before (`replayed`, nothing changed). Refusals: `422 "
        "opening_rows_refused` (`problems`: row, column, reason of each), `422 "
        "opening_total_disagrees` (`difference_fen` and the figures), `422 opening_file_invalid`, "
        "`409 no_first_statement`, `404 institution_not_found`. Operator only."
    ),
    responses={
        200: {"description": "A dry run, or a file imported before."},
        422: documented_problem("A refused row, a total the statement does not hold."),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_opening(
    institution_id: UUID,
    caller: Admin,
    db: Db,
    request: Request,
    response: Response,
    dry_run: Annotated[bool, Query(description="Check everything, write nothing.")] = False,
) -> OpeningImportOut:
    data = await request.body()
    secret = request.app.state.settings.secret_key.get_secret_value()
    outcome = await db.run(
        lambda session: import_opening_balances(
            session,
            secret,
            institution_id,
            data,
            "api upload",
            utcnow(),
            dry_run=dry_run,
            actor=caller,
        )
    )
    if outcome.replayed or outcome.dry_run:
        response.status_code = 200
    return OpeningImportOut(
        import_id=outcome.import_id,
        file_sha256=outcome.file_sha256,
        rows=outcome.rows,
        total_fen=outcome.total_fen,
        dry_run=outcome.dry_run,
        replayed=outcome.replayed,
        warnings=[RowNote(row=w.row, column=w.column, reason=w.reason) for w in outcome.warnings],
        enrollments=[
            ImportedEnrollment(
                row=e.row,
                enrollment_id=e.enrollment_id,
                order_no=e.order_no,
                parent_key=e.parent_key,
            )
            for e in outcome.enrollments
        ],
    )
