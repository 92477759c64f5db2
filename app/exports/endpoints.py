import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from typing import Annotated
from urllib.parse import quote
from uuid import UUID

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.endpoints import InvalidPeriod, trail_filter
from app.auth.dependencies import AdminOrRegulator
from app.db.unit import ReadDb
from app.errors import documented_problem
from app.exports.formats import Row, XlsxWriter, csv_stream, file_chunks
from app.exports.sources import EXPORTS, Export, ExportFilter
from app.kit.clock import utcnow
from app.kit.errors import NotFound
from app.kit.workdays import local_date

router = APIRouter(prefix="/v1/regulator/exports", tags=["exports"])

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class UnknownExport(NotFound):
    code = "unknown_export"
    title = "No such export"


class AsOfInFuture(InvalidPeriod):
    code = "as_of_in_future"
    title = "as_of is in the future"


def _disposition(export: Export, what: str, scope: str, fmt: str) -> str:
    """RFC 6266: an ASCII `filename` for old clients, the Chinese one in `filename*`."""
    day = local_date(utcnow()).strftime("%Y%m%d")
    ascii_name = f"{what}-{scope}-{day}.{fmt}"
    name = f"{export.title}-{scope}-{day}.{fmt}"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


async def _xlsx(export: Export, pages: AsyncIterator[Sequence[Row]]) -> str:
    """The workbook in a temporary file, built a page at a time; its path."""
    handle, path = tempfile.mkstemp(prefix="prepaid-guard-export-", suffix=".xlsx")
    os.close(handle)
    try:
        writer = XlsxWriter(path, export.columns, export.title)
        async for page in pages:
            writer.append(page)
        await anyio.to_thread.run_sync(writer.close)  # zips the sheet: seconds for a big one
    except BaseException:
        os.unlink(path)
        raise
    return path


def _sent_then_removed(path: str) -> Iterator[bytes]:
    try:
        yield from file_chunks(path)
    finally:
        os.unlink(path)


@router.get(
    "/{what}.{fmt}",
    summary="Export balances, alerts, breaks or the audit trail (CSV or XLSX)",
    description=(
        "`what`: `balances` (each institution's balance view), `alerts`, `breaks` "
        "(reconciliation breaks) or `audit` (the audit trail); `fmt`: `csv` (UTF-8 with a BOM, "
        "so Excel reads Chinese) or `xlsx`. Chinese column headings, amounts in 元 with two "
        "decimals computed exactly from fen (numeric cells with format `0.00` in XLSX), times in "
        "Asia/Shanghai. Filters as the corresponding list: balances `level`, `q`, `bank`, "
        "`as_of`; alerts `institution_id`, `since`, `until` (by opening), `status` "
        "(`open`/`closed`); breaks `institution_id`, `since`, `until`, `status` "
        "(`open`/`closed`); audit `institution_id`, `since`, `until`, `action`. A regulator "
        "exports its jurisdiction only (`404` for an institution of another); the operator "
        "everything. Streamed: a CSV is written a page of rows at a time; an XLSX is built a "
        "page at a time in a constant-memory workbook in a temporary file, then sent. "
        "`404 unknown_export` for another `what` or `fmt`; `422 invalid_period`, "
        "`422 as_of_in_future`."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file, as an attachment.",
            "content": {media: {} for media in MEDIA_TYPES.values()},
        },
        404: documented_problem("`unknown_export`, or an institution out of scope"),
    },
)
async def export(
    what: str,
    fmt: str,
    caller: AdminOrRegulator,
    db: ReadDb,
    institution_id: Annotated[UUID | None, Query(description="One institution's rows.")] = None,
    since: Annotated[datetime | None, Query(description="Opened (or done) from then on.")] = None,
    until: Annotated[datetime | None, Query(description="Opened (or done) before then.")] = None,
    status: Annotated[str | None, Query(max_length=20, description="alerts, breaks")] = None,
    level: Annotated[str | None, Query(max_length=10, description="balances")] = None,
    q: Annotated[str | None, Query(max_length=200, description="balances: name or USCC")] = None,
    bank: Annotated[str | None, Query(max_length=32, description="balances")] = None,
    as_of: Annotated[datetime | None, Query(description="balances, as of a past moment")] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=60, description="audit")] = None,
) -> StreamingResponse:
    chosen = EXPORTS.get(what)
    if chosen is None or fmt not in MEDIA_TYPES:
        raise UnknownExport(
            f"no export {what}.{fmt}; exports are {', '.join(sorted(EXPORTS))} as csv or xlsx"
        )
    if as_of is not None and (as_of.tzinfo is None or as_of > utcnow()):
        raise AsOfInFuture("as_of is a past moment with its offset (e.g. +08:00)")

    async def checked(session: AsyncSession) -> ExportFilter:
        # Everything that can refuse is checked before the first byte: a stream cannot turn
        # into a problem document half-way.
        trail = await trail_filter(session, caller, institution_id, since, until, action)
        return ExportFilter(
            jurisdiction_code=trail.jurisdiction_code,
            own_key_id=trail.own_key_id,
            institution_id=institution_id,
            since=since,
            until=until,
            status=status,
            level=level,
            q=q,
            bank=bank,
            as_of=as_of,
            action=action,
        )

    where = await db.run(checked)
    pages = chosen.pages(db, where)
    scope = where.jurisdiction_code or "all"
    headers = {"Content-Disposition": _disposition(chosen, what, scope, fmt)}
    if fmt == "csv":
        body = csv_stream(chosen.columns, pages)
        return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers)
    path = await _xlsx(chosen, pages)
    return StreamingResponse(_sent_then_removed(path), media_type=MEDIA_TYPES[fmt], headers=headers)
