"""Reconciliation runs (one per bank statement read) and their breaks.

Revision ID: 0011_reconciliation
Revises: 0010_idempotency_in_unit
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_reconciliation"
down_revision: str | None = "0010_idempotency_in_unit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_breaks",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=True),
        sa.Column("bank_reference", sa.String(length=64), nullable=True),
        sa.Column("movement_id", sa.String(length=64), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("expected_fen", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=100), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=100), nullable=True),
        sa.Column("close_note", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_reconciliation_breaks")),
    )
    with op.batch_alter_table("reconciliation_breaks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_breaks_institution_id_run_id"),
            ["institution_id", "run_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_reconciliation_breaks_status_opened_at"),
            ["status", "opened_at"],
            unique=False,
        )

    op.create_table(
        "reconciliation_runs",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bank_slug", sa.String(length=32), nullable=False),
        sa.Column("bank_message_id", sa.Uuid(), nullable=False),
        sa.Column("account_no", sa.String(length=40), nullable=False),
        sa.Column("statement_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("opening_fen", sa.BigInteger(), nullable=False),
        sa.Column("closing_fen", sa.BigInteger(), nullable=False),
        sa.Column("credits_fen", sa.BigInteger(), nullable=False),
        sa.Column("debits_fen", sa.BigInteger(), nullable=False),
        sa.Column("ledger_balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_message_id"],
            ["bank_messages.id"],
            name=op.f("fk_reconciliation_runs_bank_message_id_bank_messages"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_reconciliation_runs")),
        sa.UniqueConstraint("bank_message_id", name=op.f("uq_reconciliation_runs_bank_message_id")),
    )
    with op.batch_alter_table("reconciliation_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_runs_institution_id_statement_date_id"),
            ["institution_id", "statement_date", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_reconciliation_runs_statement_date_id"),
            ["statement_date", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_runs_statement_date_id"))
        batch_op.drop_index(batch_op.f("ix_reconciliation_runs_institution_id_statement_date_id"))

    op.drop_table("reconciliation_runs")
    with op.batch_alter_table("reconciliation_breaks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_breaks_status_opened_at"))
        batch_op.drop_index(batch_op.f("ix_reconciliation_breaks_institution_id_run_id"))

    op.drop_table("reconciliation_breaks")
