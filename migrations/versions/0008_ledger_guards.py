"""The database's guards beyond the journal: heads, accounts and transfers change only by the ledger's
own legal transitions; daily checkpoints of each institution's head, append-only.

- `ledger_heads`: created at the genesis; then it only moves forward, onto the journal's last entry
  (its seq and hash).
- `ledger_accounts`: opened at zero; afterwards only `balance_fen` and `last_seq` change, and the
  balance only by the sum of the postings of the entries after the account's previous `last_seq`.
- `ledger_transfers`: reserved pending by an existing entry; afterwards only resolved, once, from
  pending to posted or voided by a later existing entry. Amount, accounts and reserve entry never
  change.
- None of them, nor a checkpoint, is ever deleted (or truncated); checkpoints are never updated.

PostgreSQL checks the head AFTER the row changes: the ledger moves it in the same statement that
inserts the entries (one round trip), and only an AFTER trigger sees that statement's own rows.

Revision ID: 0008_ledger_guards
Revises: 0007_lesson_windows
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_ledger_guards"
down_revision: str | None = "0007_lesson_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "'" + "0" * 64 + "'"

# Conditions shared by both databases: each is true when the change is NOT one the ledger makes.
HEAD_NOT_AT_GENESIS = f"NEW.last_seq <> 0 OR NEW.last_hash <> {GENESIS}"
HEAD_NOT_FORWARD_TO_LAST_ENTRY = """
    NEW.institution_id <> OLD.institution_id
    OR NEW.last_seq <= OLD.last_seq
    OR NOT EXISTS (SELECT 1 FROM ledger_entries
                    WHERE institution_id = NEW.institution_id AND seq = NEW.last_seq
                      AND hash = NEW.last_hash)
    OR EXISTS (SELECT 1 FROM ledger_entries
                WHERE institution_id = NEW.institution_id AND seq > NEW.last_seq)"""
ACCOUNT_NOT_AT_ZERO = "NEW.balance_fen <> 0 OR NEW.last_seq <> 0"
ACCOUNT_NOT_MOVED_BY_ITS_POSTINGS = """
    NEW.last_seq <= OLD.last_seq
    OR NEW.balance_fen - OLD.balance_fen <> (
        SELECT coalesce(sum(amount_fen), 0) FROM ledger_postings
         WHERE institution_id = NEW.institution_id AND account_id = NEW.id
           AND entry_seq > OLD.last_seq AND entry_seq <= NEW.last_seq)"""
TRANSFER_NOT_RESERVED = """
    NEW.status <> 'pending' OR NEW.resolve_seq IS NOT NULL OR NEW.resolved_at IS NOT NULL
    OR NOT EXISTS (SELECT 1 FROM ledger_entries
                    WHERE institution_id = NEW.institution_id AND seq = NEW.reserve_seq)"""
TRANSFER_NOT_RESOLVED_ONCE = """
    OLD.status <> 'pending' OR NEW.status NOT IN ('posted', 'voided')
    OR NEW.resolve_seq IS NULL OR NEW.resolve_seq <= OLD.reserve_seq OR NEW.resolved_at IS NULL
    OR NOT EXISTS (SELECT 1 FROM ledger_entries
                    WHERE institution_id = NEW.institution_id AND seq = NEW.resolve_seq)"""


def _unchanged(columns: tuple[str, ...], postgres: bool) -> str:
    """True when one of `columns` changed (NULL-safe on both databases)."""
    operator = "IS DISTINCT FROM" if postgres else "IS NOT"
    return " OR ".join(f"NEW.{column} {operator} OLD.{column}" for column in columns)


ACCOUNT_FIXED = ("institution_id", "id", "code", "kind", "normal", "lower_limit_fen", "created_at")
TRANSFER_FIXED = (
    "institution_id",
    "id",
    "source_account_id",
    "transit_account_id",
    "settle_account_id",
    "amount_fen",
    "reserve_seq",
    "created_at",
)

# (table, BEFORE/AFTER, operation, condition under which it is refused, message)
RULES = [
    (
        "ledger_heads",
        "BEFORE",
        "INSERT",
        lambda pg: HEAD_NOT_AT_GENESIS,
        "a ledger head starts at the genesis",
    ),
    (
        "ledger_heads",
        "AFTER",
        "UPDATE",
        lambda pg: HEAD_NOT_FORWARD_TO_LAST_ENTRY,
        "a ledger head only moves forward, onto the last entry of its journal",
    ),
    (
        "ledger_accounts",
        "BEFORE",
        "INSERT",
        lambda pg: ACCOUNT_NOT_AT_ZERO,
        "a ledger account opens at zero",
    ),
    (
        "ledger_accounts",
        "BEFORE",
        "UPDATE",
        lambda pg: f"{_unchanged(ACCOUNT_FIXED, pg)} OR {ACCOUNT_NOT_MOVED_BY_ITS_POSTINGS}",
        "the balance of a ledger account changes only by its postings",
    ),
    (
        "ledger_transfers",
        "BEFORE",
        "INSERT",
        lambda pg: TRANSFER_NOT_RESERVED,
        "a transfer starts pending, reserved by an entry of the journal",
    ),
    (
        "ledger_transfers",
        "BEFORE",
        "UPDATE",
        lambda pg: f"{_unchanged(TRANSFER_FIXED, pg)} OR {TRANSFER_NOT_RESOLVED_ONCE}",
        "a transfer is only resolved, once, from pending to posted or voided by a later entry",
    ),
]
NEVER_REMOVED = ("ledger_heads", "ledger_accounts", "ledger_transfers", "ledger_checkpoints")

POSTGRES_REFUSE = """
    CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the ledger refuses % on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END $$"""


def _name(table: str, operation: str) -> str:
    return f"{table}_guard_{operation.lower()}"


def _postgres_guards() -> list[str]:
    statements = [POSTGRES_REFUSE]
    for table, when, operation, condition, message in RULES:
        name = _name(table, operation)
        statements += [
            f"""
            CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {condition(True)} THEN
                    RAISE EXCEPTION '{message}: % on % refused', TG_OP, TG_TABLE_NAME
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN NEW;
            END $$""",
            f"""CREATE TRIGGER {name} {when} {operation} ON {table}
                FOR EACH ROW EXECUTE FUNCTION {name}()""",
        ]
    for table in NEVER_REMOVED:
        statements += [
            f"""CREATE TRIGGER {table}_never_removed BEFORE DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION ledger_refuse()""",
            f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()""",
        ]
    statements.append(
        """CREATE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE ON ledger_checkpoints
           FOR EACH ROW EXECUTE FUNCTION ledger_refuse()"""
    )
    return statements


def _sqlite_guards() -> list[str]:
    # SQLite runs each of the ledger's statements separately, so BEFORE sees what it must.
    statements = [
        f"""CREATE TRIGGER {_name(table, operation)} BEFORE {operation} ON {table}
            WHEN {condition(False)}
            BEGIN SELECT RAISE(ABORT, '{message}'); END"""
        for table, _, operation, condition, message in RULES
    ]
    statements += [
        f"""CREATE TRIGGER {table}_never_removed BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, 'the ledger refuses DELETE on {table}'); END"""
        for table in NEVER_REMOVED
    ]
    statements.append(
        """CREATE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE ON ledger_checkpoints
           BEGIN SELECT RAISE(ABORT, 'the ledger refuses UPDATE on ledger_checkpoints'); END"""
    )
    return statements


def _triggers(postgres: bool) -> list[tuple[str, str]]:
    """(trigger, table) of every trigger this revision creates."""
    triggers = [(_name(table, operation), table) for table, _, operation, _, _ in RULES]
    triggers += [(f"{table}_never_removed", table) for table in NEVER_REMOVED]
    if postgres:
        triggers += [(f"{table}_no_truncate", table) for table in NEVER_REMOVED]
    triggers.append(("ledger_checkpoints_append_only", "ledger_checkpoints"))
    return triggers


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "ledger_accounts",
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
    )
    # Accounts that already have postings: their last entry, so the balance guard starts true.
    op.execute("""
        UPDATE ledger_accounts SET last_seq = coalesce(
            (SELECT max(entry_seq) FROM ledger_postings
              WHERE ledger_postings.institution_id = ledger_accounts.institution_id
                AND ledger_postings.account_id = ledger_accounts.id), 0)
    """)
    op.create_table(
        "ledger_checkpoints",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["ledger_heads.institution_id"],
            name=op.f("fk_ledger_checkpoints_institution_id_ledger_heads"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "day", name=op.f("pk_ledger_checkpoints")),
    )
    for statement in _postgres_guards() if postgres else _sqlite_guards():
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for trigger, table in _triggers(postgres):
        op.execute(f"DROP TRIGGER {trigger} ON {table}" if postgres else f"DROP TRIGGER {trigger}")
    if postgres:
        for table, _, operation, _, _ in RULES:
            op.execute(f"DROP FUNCTION {_name(table, operation)}()")
        op.execute("DROP FUNCTION ledger_refuse()")
    op.drop_table("ledger_checkpoints")
    op.drop_column("ledger_accounts", "last_seq")
