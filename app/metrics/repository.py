"""The few aggregate reads behind the database gauges, each served by an index on its filter."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import Alert, BankMessage, Instruction, ReconciliationBreak
from app.models.bank_message import MessageStatus
from app.models.instruction import InstructionStatus
from app.models.reconciliation import BreakStatus

# Stored and verified, but not applied yet: a payment acknowledged to its bank and not yet credited
# (the inbox's worker credits it within moments), a statement file waiting for its reconciliation,
# and a notification whose application failed (the process_inbox job retries it; once out of
# retries it stays here, and the lag keeps growing until someone looks, which is the point).
AWAITING_APPLICATION = (MessageStatus.stored, MessageStatus.received, MessageStatus.failed)


async def oldest_unapplied_message(connection: AsyncConnection) -> datetime | None:
    return await connection.scalar(
        select(func.min(BankMessage.received_at)).where(
            BankMessage.status.in_(AWAITING_APPLICATION)
        )
    )


async def oldest_unsent_instruction(connection: AsyncConnection) -> datetime | None:
    return await connection.scalar(
        select(func.min(Instruction.created_at)).where(
            Instruction.status == InstructionStatus.pending
        )
    )


async def open_alerts_by_level(connection: AsyncConnection) -> dict[str, int]:
    rows = await connection.execute(
        select(Alert.level, func.count()).where(Alert.closed_at.is_(None)).group_by(Alert.level)
    )
    return {level: count for level, count in rows}


async def open_breaks_by_type(connection: AsyncConnection) -> dict[str, int]:
    rows = await connection.execute(
        select(ReconciliationBreak.type, func.count())
        .where(ReconciliationBreak.status == BreakStatus.open)
        .group_by(ReconciliationBreak.type)
    )
    return {kind: count for kind, count in rows}
