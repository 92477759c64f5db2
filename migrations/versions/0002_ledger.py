"""Ledger: heads, accounts, journal entries and postings, two-phase transfers, and the database's own
guards on the journal (balanced entries, append-only).

Revision ID: 0002_ledger
Revises: 0001_idempotency
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_ledger"
down_revision: str | None = "0001_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL: an entry row arrives after its postings (their reference to it is deferred), so a
# trigger on the entry sees them all and refuses an entry that does not balance; a posting for an
# entry that already exists is refused, so nothing can be added later. Journal rows cannot be updated,
# deleted or truncated: a correction is a reversing entry.
POSTGRES_GUARDS = [
    """
    CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the ledger journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    """
    CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        total numeric;
        lines integer;
    BEGIN
        SELECT coalesce(sum(amount_fen), 0), count(*) INTO total, lines
          FROM ledger_postings
         WHERE institution_id = NEW.institution_id AND entry_seq = NEW.seq;
        IF lines < 2 OR lines <> NEW.posting_count OR total <> 0 THEN
            RAISE EXCEPTION 'journal entry % of institution % does not balance: % postings summing to %',
                NEW.seq, NEW.institution_id, lines, total
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ledger_refuse_late_posting() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM ledger_entries
                    WHERE institution_id = NEW.institution_id AND seq = NEW.entry_seq) THEN
            RAISE EXCEPTION 'journal entry % of institution % is closed: no posting may be added',
                NEW.entry_seq, NEW.institution_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """CREATE TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
       FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced()""",
    """CREATE TRIGGER ledger_postings_before_entry BEFORE INSERT ON ledger_postings
       FOR EACH ROW EXECUTE FUNCTION ledger_refuse_late_posting()""",
    *(
        statement
        for table in ("ledger_entries", "ledger_postings")
        for statement in (
            f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()""",
            f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()""",
        )
    ),
]

_POSTINGS_OF_NEW_ENTRY = (
    "FROM ledger_postings WHERE institution_id = NEW.institution_id AND entry_seq = NEW.seq"
)

# SQLite: the same rules as triggers that abort the statement.
SQLITE_GUARDS = [
    f"""CREATE TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
        WHEN (SELECT count(*) {_POSTINGS_OF_NEW_ENTRY}) < 2
          OR (SELECT count(*) {_POSTINGS_OF_NEW_ENTRY}) <> NEW.posting_count
          OR (SELECT coalesce(sum(amount_fen), 0) {_POSTINGS_OF_NEW_ENTRY}) <> 0
        BEGIN SELECT RAISE(ABORT, 'journal entry does not balance'); END""",
    """CREATE TRIGGER ledger_postings_before_entry BEFORE INSERT ON ledger_postings
        WHEN EXISTS (SELECT 1 FROM ledger_entries
                      WHERE institution_id = NEW.institution_id AND seq = NEW.entry_seq)
        BEGIN SELECT RAISE(ABORT, 'journal entry is closed: no posting may be added'); END""",
    *(
        f"""CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table}
            BEGIN SELECT RAISE(ABORT, 'the ledger journal is append-only'); END"""
        for table in ("ledger_entries", "ledger_postings")
        for operation in ("UPDATE", "DELETE")
    ),
]

GUARD_FUNCTIONS = [
    "ledger_refuse_change",
    "ledger_check_entry_balanced",
    "ledger_refuse_late_posting",
]


def _create_journal_guards() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_GUARDS if postgres else SQLITE_GUARDS:
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "ledger_heads",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("institution_id", name=op.f("pk_ledger_heads")),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("normal", sa.SmallInteger(), nullable=False),
        sa.Column("lower_limit_fen", sa.BigInteger(), nullable=True),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "lower_limit_fen IS NULL OR balance_fen * normal >= lower_limit_fen",
            name=op.f("ck_ledger_accounts_within_lower_limit"),
        ),
        sa.CheckConstraint("normal IN (1, -1)", name=op.f("ck_ledger_accounts_normal_side")),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["ledger_heads.institution_id"],
            name=op.f("fk_ledger_accounts_institution_id_ledger_heads"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint(
            "institution_id", "code", name=op.f("uq_ledger_accounts_institution_id_code")
        ),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("memo", sa.String(length=500), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("posting_count", sa.SmallInteger(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["ledger_heads.institution_id"],
            name=op.f("fk_ledger_entries_institution_id_ledger_heads"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "seq", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint(
            "institution_id",
            "idempotency_key",
            name=op.f("uq_ledger_entries_institution_id_idempotency_key"),
        ),
    )
    op.create_index(
        op.f("ix_ledger_entries_institution_id_posted_at"),
        "ledger_entries",
        ["institution_id", "posted_at"],
    )

    op.create_table(
        "ledger_postings",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("entry_seq", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_fen <> 0", name=op.f("ck_ledger_postings_nonzero_amount")),
        sa.ForeignKeyConstraint(
            ["institution_id", "account_id"],
            ["ledger_accounts.institution_id", "ledger_accounts.id"],
            name=op.f("fk_ledger_postings_institution_id_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id", "entry_seq"],
            ["ledger_entries.institution_id", "ledger_entries.seq"],
            name=op.f("fk_ledger_postings_institution_id_entry_seq_ledger_entries"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint(
            "institution_id", "entry_seq", "line_no", name=op.f("pk_ledger_postings")
        ),
    )
    op.create_index(
        op.f("ix_ledger_postings_institution_id_account_id_entry_seq"),
        "ledger_postings",
        ["institution_id", "account_id", "entry_seq"],
    )

    op.create_table(
        "ledger_transfers",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_account_id", sa.Uuid(), nullable=False),
        sa.Column("transit_account_id", sa.Uuid(), nullable=False),
        sa.Column("settle_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reserve_seq", sa.BigInteger(), nullable=False),
        sa.Column("resolve_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'posted', 'voided')",
            name=op.f("ck_ledger_transfers_known_status"),
        ),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_ledger_transfers_positive_amount")),
        sa.ForeignKeyConstraint(
            ["institution_id", "settle_account_id"],
            ["ledger_accounts.institution_id", "ledger_accounts.id"],
            name=op.f("fk_ledger_transfers_institution_id_settle_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id", "source_account_id"],
            ["ledger_accounts.institution_id", "ledger_accounts.id"],
            name=op.f("fk_ledger_transfers_institution_id_source_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id", "transit_account_id"],
            ["ledger_accounts.institution_id", "ledger_accounts.id"],
            name=op.f("fk_ledger_transfers_institution_id_transit_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["ledger_heads.institution_id"],
            name=op.f("fk_ledger_transfers_institution_id_ledger_heads"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_ledger_transfers")),
        sa.UniqueConstraint(
            "institution_id",
            "reserve_seq",
            name=op.f("uq_ledger_transfers_institution_id_reserve_seq"),
        ),
    )
    _create_journal_guards()


def downgrade() -> None:
    # Dropping the tables drops their triggers; PostgreSQL's functions go separately.
    for table in (
        "ledger_transfers",
        "ledger_postings",
        "ledger_entries",
        "ledger_accounts",
        "ledger_heads",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        for function in GUARD_FUNCTIONS:
            op.execute(f"DROP FUNCTION {function}()")
