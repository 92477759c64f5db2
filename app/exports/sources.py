"""What each export holds: its Chinese headings and its rows, read a page at a time, each page in a
short transaction of its own, so that a long export holds neither memory nor a transaction open.

Filters are those of the corresponding list: balances `level`, `q`, `bank`, `as_of`; alerts and
breaks `institution_id`, `since`, `until` (by the moment they opened), `status`; audit
`institution_id`, `since`, `until`, `action`."""

import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.chain import PLATFORM_CHAIN
from app.balances.schemas import BalanceView
from app.db.unit import Database
from app.exports.formats import Column, Kind, Row
from app.models import Alert, Institution, ReconciliationBreak, ReconciliationRun
from app.supervision.listing import balance_rows

PAGE_SIZE = 500  # rows read per transaction


@dataclass(frozen=True, slots=True)
class ExportFilter:
    jurisdiction_code: str | None  # None: every jurisdiction (the operator)
    own_key_id: str | None = None  # a regulator's own key (its actions, in the audit export)
    institution_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None  # alerts: open/closed; breaks: their status
    level: str | None = None
    q: str | None = None
    bank: str | None = None
    as_of: datetime | None = None
    action: str | None = None


Pages = Callable[[Database, ExportFilter], AsyncIterator[Sequence[Row]]]


@dataclass(frozen=True, slots=True)
class Export:
    title: str  # the sheet's name and the file name's Chinese part
    columns: tuple[Column, ...]
    pages: Pages


INSTITUTION_COLUMNS = (
    Column("机构名称"),
    Column("统一社会信用代码"),
    Column("机构ID"),
)


# --- balances ---

BALANCE_COLUMNS = (
    *INSTITUTION_COLUMNS,
    Column("托管银行"),
    Column("监管账户"),
    Column("预警等级"),
    Column("监管账户余额(元)", Kind.yuan),
    Column("银行余额(元)", Kind.yuan),
    Column("银行余额时间", Kind.moment),
    Column("未消课金额(元)", Kind.yuan),
    Column("留存金额(元)", Kind.yuan),
    Column("最低余额(元)", Kind.yuan),
    Column("应留存余额(元)", Kind.yuan),
    Column("可释放金额(元)", Kind.yuan),
    Column("在途金额(元)", Kind.yuan),
    Column("待查明金额(元)", Kind.yuan),
    Column("余额缺口(元)", Kind.yuan),
    Column("可拨付金额(元)", Kind.yuan),
    Column("覆盖率"),
)


async def balance_pages(db: Database, where: ExportFilter) -> AsyncIterator[Sequence[Row]]:
    """Through `balance_rows`, by id after the last one of the page before."""
    after: UUID | None = None
    while True:

        async def read(
            session: AsyncSession, after: UUID | None = after
        ) -> list[tuple[Institution, BalanceView]]:
            return await balance_rows(
                session,
                where.jurisdiction_code,
                level=where.level,
                q=where.q,
                bank=where.bank,
                as_of=where.as_of,
                after=after,
                limit=PAGE_SIZE,
            )

        rows = await db.run(read)
        yield [
            (
                institution.name,
                institution.uscc,
                str(institution.id),
                institution.bank_slug,
                institution.escrow_account_no,
                view.alert_level,
                view.ledger_balance_fen,
                view.bank_balance_fen,
                view.bank_balance_as_of,
                view.unconsumed_fen,
                view.holdback_fen,
                view.floor_fen,
                view.required_fen,
                view.releasable_fen,
                view.in_transit_fen,
                view.suspense_fen,
                view.headroom_fen,
                view.payout_allowance_fen,
                "" if view.coverage_ratio is None else str(view.coverage_ratio),
            )
            for institution, view in rows
        ]
        if len(rows) < PAGE_SIZE:
            return
        after = rows[-1][0].id


# --- alerts and breaks: an institution's rows by the moment they opened ---


def _scoped(query: Select[Any], model: Any, where: ExportFilter) -> Select[Any]:
    query = query.join(Institution, Institution.id == model.institution_id)
    if where.jurisdiction_code is not None:
        query = query.where(Institution.jurisdiction_code == where.jurisdiction_code)
    if where.institution_id is not None:
        query = query.where(model.institution_id == where.institution_id)
    if where.since is not None:
        query = query.where(model.opened_at >= where.since)
    if where.until is not None:
        query = query.where(model.opened_at < where.until)
    return query


async def _by_opening(db: Database, query: Any, model: Any) -> AsyncIterator[Sequence[Any]]:
    """`query`'s rows oldest first, a page per transaction, by (opened_at, id) after the last."""
    position: tuple[datetime, UUID] | None = None
    while True:
        page = query.order_by(model.opened_at, model.id).limit(PAGE_SIZE)
        if position is not None:
            at, row_id = position
            page = page.where(
                or_(model.opened_at > at, and_(model.opened_at == at, model.id > row_id))
            )

        async def read(session: AsyncSession, page: Select[Any] = page) -> list[Any]:
            return list((await session.execute(page)).all())

        rows = await db.run(read)
        yield rows
        if len(rows) < PAGE_SIZE:
            return
        position = (rows[-1].opened_at, rows[-1].id)


ALERT_COLUMNS = (
    *INSTITUTION_COLUMNS,
    Column("预警类型"),
    Column("预警等级"),
    Column("原因"),
    Column("开始时间", Kind.moment),
    Column("解除时间", Kind.moment),
    Column("状态"),
)


async def alert_pages(db: Database, where: ExportFilter) -> AsyncIterator[Sequence[Row]]:
    query: Any = select(
        Institution.name,
        Institution.uscc,
        Alert.institution_id,
        Alert.id,
        Alert.kind,
        Alert.level,
        Alert.reason,
        Alert.opened_at,
        Alert.closed_at,
    )
    query = _scoped(query, Alert, where)
    if where.status == "open":
        query = query.where(Alert.closed_at.is_(None))
    elif where.status == "closed":
        query = query.where(Alert.closed_at.is_not(None))
    async for rows in _by_opening(db, query, Alert):
        yield [
            (
                row.name,
                row.uscc,
                str(row.institution_id),
                row.kind,
                row.level,
                row.reason,
                row.opened_at,
                row.closed_at,
                "未解除" if row.closed_at is None else "已解除",
            )
            for row in rows
        ]


BREAK_COLUMNS = (
    *INSTITUTION_COLUMNS,
    Column("对账单日期"),
    Column("差错类型"),
    Column("状态"),
    Column("银行流水号"),
    Column("银行金额(元)", Kind.yuan),
    Column("账务金额(元)", Kind.yuan),
    Column("说明"),
    Column("发现时间", Kind.moment),
    Column("关闭时间", Kind.moment),
    Column("关闭人"),
    Column("关闭说明"),
)


async def break_pages(db: Database, where: ExportFilter) -> AsyncIterator[Sequence[Row]]:
    query: Any = select(
        Institution.name,
        Institution.uscc,
        ReconciliationBreak.institution_id,
        ReconciliationBreak.id,
        ReconciliationRun.statement_date,
        ReconciliationBreak.type,
        ReconciliationBreak.status,
        ReconciliationBreak.bank_reference,
        ReconciliationBreak.amount_fen,
        ReconciliationBreak.expected_fen,
        ReconciliationBreak.detail,
        ReconciliationBreak.opened_at,
        ReconciliationBreak.closed_at,
        ReconciliationBreak.closed_by,
        ReconciliationBreak.close_note,
    ).join(
        ReconciliationRun,
        and_(
            ReconciliationRun.institution_id == ReconciliationBreak.institution_id,
            ReconciliationRun.id == ReconciliationBreak.run_id,
        ),
    )
    query = _scoped(query, ReconciliationBreak, where)
    if where.status is not None:
        query = query.where(ReconciliationBreak.status == where.status)
    async for rows in _by_opening(db, query, ReconciliationBreak):
        yield [
            (
                row.name,
                row.uscc,
                str(row.institution_id),
                row.statement_date.isoformat(),
                row.type,
                row.status,
                row.bank_reference,
                row.amount_fen,
                row.expected_fen,
                row.detail,
                row.opened_at,
                row.closed_at,
                row.closed_by,
                row.close_note,
            )
            for row in rows
        ]


# --- audit ---

AUDIT_COLUMNS = (
    Column("时间", Kind.moment),
    Column("类别"),
    Column("操作者角色"),
    Column("操作者ID"),
    Column("操作"),
    Column("对象类型"),
    Column("对象ID"),
    Column("机构ID"),
    Column("来源地址"),
    Column("金额(元)", Kind.yuan),
    Column("详情"),
)


async def audit_pages(db: Database, where: ExportFilter) -> AsyncIterator[Sequence[Row]]:
    trail = audit.TrailFilter(
        jurisdiction_code=where.jurisdiction_code,
        own_key_id=where.own_key_id,
        institution_id=where.institution_id,
        since=where.since,
        until=where.until,
        action=where.action,
    )
    cursor: str | None = None
    while True:
        page = audit.trail_page(trail, cursor, PAGE_SIZE)

        async def read(session: AsyncSession, page: Select[Any] = page) -> list[Any]:
            return list((await session.execute(page)).all())

        rows = await db.run(read)
        yield [
            (
                row.at,
                "资金" if row.source == "money" else "操作",
                row.actor_role or "",
                row.actor_id or "",
                row.action,
                row.object_type,
                row.object_id,
                "" if row.institution_id == PLATFORM_CHAIN else str(row.institution_id),
                row.address,
                row.amount_fen,
                json.dumps(row.details, ensure_ascii=False)
                if row.details is not None
                else row.memo,
            )
            for row in rows
        ]
        if len(rows) < PAGE_SIZE:
            return
        cursor = audit.encode_cursor(rows[-1])


EXPORTS: dict[str, Export] = {
    "balances": Export("监管账户余额", BALANCE_COLUMNS, balance_pages),
    "alerts": Export("预警记录", ALERT_COLUMNS, alert_pages),
    "breaks": Export("对账差错", BREAK_COLUMNS, break_pages),
    "audit": Export("审计记录", AUDIT_COLUMNS, audit_pages),
}
