"""The outbox: money leaves the escrow account only by an instruction written in the same
transaction as the two-phase ledger transfer that reserves it (STYLE rule 8). Payouts and refunds
both come through here; the dispatch job sends what is pending."""

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.ledger.types import Transfer
from app.models import Instruction
from app.models.instruction import InstructionKind

# The bank's reference is at most 32 characters of [A-Za-z0-9]: a two-letter kind and 30 hex digits.
PREFIXES = {InstructionKind.payout: "PO", InstructionKind.refund: "RF"}
TRANSIT_KIND = {
    InstructionKind.payout: "payout_in_transit",
    InstructionKind.refund: "refund_in_transit",
}


async def reserve_and_instruct(
    session: AsyncSession,
    institution_id: UUID,
    kind: InstructionKind,
    object_id: UUID,
    source_account_id: UUID,
    amount_fen: int,
    payee_account_no: str | None,
    payee_name: str,
    *,
    bank_slug: str,
    memo: str,
    order_no: str | None = None,
    payment_reference: str | None = None,
    payment_channel_order_id: str | None = None,
) -> tuple[Transfer, Instruction]:
    """Reserve `amount_fen` from the source account into the kind's in-transit account (to settle
    against escrow cash when the bank confirms) and write the instruction that asks for it."""
    connection = await session.connection()
    books = await institution_books(connection, institution_id)
    transit = getattr(books, TRANSIT_KIND[kind])
    transfer = await ledger.reserve(
        connection,
        institution_id,
        idempotency_key=f"{kind}:{object_id}",
        kind=f"{kind}_reserved",
        source=source_account_id,
        transit=transit.id,
        settle=books.escrow_cash.id,
        amount_fen=amount_fen,
    )
    instruction = Instruction(
        institution_id=institution_id,
        id=f"{PREFIXES[kind]}{object_id.hex[:30]}",
        kind=kind,
        transfer_id=transfer.id,
        amount_fen=amount_fen,
        payee_account_no=payee_account_no,
        payee_name=payee_name,
        bank_slug=bank_slug,
        memo=memo,
        order_no=order_no,
        payment_reference=payment_reference,
        payment_channel_order_id=payment_channel_order_id,
        created_at=utcnow(),
    )
    session.add(instruction)
    return transfer, instruction
