from uuid import UUID

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Index, SmallInteger, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class LedgerPosting(Base):
    """One line of an entry: a signed amount on one account (debit positive, credit negative)."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        # Postings are inserted before their entry (so the entry's trigger can check the sum),
        # hence the deferred reference.
        ForeignKeyConstraint(
            ["institution_id", "entry_seq"],
            ["ledger_entries.institution_id", "ledger_entries.seq"],
            deferrable=True,
            initially="DEFERRED",
        ),
        ForeignKeyConstraint(
            ["institution_id", "account_id"],
            ["ledger_accounts.institution_id", "ledger_accounts.id"],
        ),
        CheckConstraint("amount_fen <> 0", name="nonzero_amount"),
        # Balances as of a past moment and journal replay read an account's postings in order.
        Index(None, "institution_id", "account_id", "entry_seq"),
    )

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    entry_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    line_no: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    account_id: Mapped[UUID] = mapped_column(Uuid)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
