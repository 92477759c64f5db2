"""The audit trail: `audit_records`, insert-only and hash-chained per chain (an institution's, or
the platform's for actions about none), with `audit_heads` holding each chain's tip; and the actor
and address of every journal entry (the trail's money side), on `ledger_entries`.

The database refuses to change or remove a record (and to truncate the table), and moves a head
only forward onto the last record of its chain, as the ledger's guards do for the journal.

Revision ID: 0017_audit_trail
Revises: 0015_alert_engine
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_audit_trail"
down_revision: str | None = "0015_alert_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "'" + "0" * 64 + "'"

# True when the change is NOT one the trail makes. A head is created at the genesis, and an update
# either leaves it as it was (the lock taken by an upsert) or moves it forward onto its last record.
HEAD_NOT_AT_GENESIS = f"NEW.last_seq <> 0 OR NEW.last_hash <> {GENESIS}"
HEAD_NOT_FORWARD_TO_LAST_RECORD = """
    NEW.institution_id <> OLD.institution_id
    OR NEW.last_seq < OLD.last_seq
    OR (NEW.last_seq = OLD.last_seq AND NEW.last_hash <> OLD.last_hash)
    OR (NEW.last_seq > OLD.last_seq AND (
        NOT EXISTS (SELECT 1 FROM audit_records
                     WHERE institution_id = NEW.institution_id AND seq = NEW.last_seq
                       AND hash = NEW.last_hash)
        OR EXISTS (SELECT 1 FROM audit_records
                    WHERE institution_id = NEW.institution_id AND seq > NEW.last_seq)))"""

HEAD_RULES = [
    ("INSERT", HEAD_NOT_AT_GENESIS, "an audit head starts at the genesis"),
    ("UPDATE", HEAD_NOT_FORWARD_TO_LAST_RECORD, "an audit head only moves forward"),
]


def _postgres() -> list[str]:
    statements = [
        """
        CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit trail refuses % on %', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'integrity_constraint_violation';
        END $$""",
        """CREATE TRIGGER audit_records_insert_only BEFORE UPDATE OR DELETE ON audit_records
           FOR EACH ROW EXECUTE FUNCTION audit_refuse()""",
        """CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
           FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse()""",
        """CREATE TRIGGER audit_heads_never_removed BEFORE DELETE ON audit_heads
           FOR EACH ROW EXECUTE FUNCTION audit_refuse()""",
        """CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads
           FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse()""",
    ]
    for operation, condition, message in HEAD_RULES:
        name = f"audit_heads_guard_{operation.lower()}"
        statements += [
            f"""
            CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {condition} THEN
                    RAISE EXCEPTION '{message}: % refused', TG_OP
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN NEW;
            END $$""",
            f"""CREATE TRIGGER {name} BEFORE {operation} ON audit_heads
                FOR EACH ROW EXECUTE FUNCTION {name}()""",
        ]
    return statements


def _sqlite() -> list[str]:
    statements = [
        f"""CREATE TRIGGER audit_records_no_{operation.lower()} BEFORE {operation} ON audit_records
            BEGIN SELECT RAISE(ABORT, 'the audit trail refuses {operation} on audit_records'); END"""
        for operation in ("UPDATE", "DELETE")
    ]
    statements.append(
        """CREATE TRIGGER audit_heads_never_removed BEFORE DELETE ON audit_heads
           BEGIN SELECT RAISE(ABORT, 'the audit trail refuses DELETE on audit_heads'); END"""
    )
    statements += [
        f"""CREATE TRIGGER audit_heads_guard_{operation.lower()} BEFORE {operation} ON audit_heads
            WHEN {condition}
            BEGIN SELECT RAISE(ABORT, '{message}'); END"""
        for operation, condition, message in HEAD_RULES
    ]
    return statements


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "audit_heads",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("institution_id", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "audit_records",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("jurisdiction_code", sa.String(length=32), nullable=True),
        sa.Column("actor_role", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=True),
        sa.Column("object_id", sa.String(length=100), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("institution_id", "seq", name=op.f("pk_audit_records")),
    )
    op.create_index(op.f("ix_audit_records_at"), "audit_records", ["at"], unique=False)
    op.create_index(
        op.f("ix_audit_records_jurisdiction_code_at"),
        "audit_records",
        ["jurisdiction_code", "at"],
        unique=False,
    )
    # Nullable columns with no default: no row is rewritten, so the journal's guards see nothing.
    op.add_column("ledger_entries", sa.Column("actor_role", sa.String(length=20), nullable=True))
    op.add_column("ledger_entries", sa.Column("actor_id", sa.String(length=100), nullable=True))
    op.add_column("ledger_entries", sa.Column("address", sa.String(length=64), nullable=True))
    for statement in _postgres() if postgres else _sqlite():
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # Plain ALTERs (both databases have DROP COLUMN): a batch copy would lose the journal's triggers.
    for column in ("address", "actor_id", "actor_role"):
        op.execute(f"ALTER TABLE ledger_entries DROP COLUMN {column}")
    op.drop_table("audit_records")  # its triggers go with it
    op.drop_table("audit_heads")
    if postgres:
        for operation, _, _ in HEAD_RULES:
            op.execute(f"DROP FUNCTION audit_heads_guard_{operation.lower()}()")
        op.execute("DROP FUNCTION audit_refuse()")
