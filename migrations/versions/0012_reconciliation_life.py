"""A break's life: movements carried past a statement's cut-off, days whose statement is missing
(a run without a statement), and each bank's reconciliation settings.

Revision ID: 0012_reconciliation_life
Revises: 0011_reconciliation
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_reconciliation_life"
down_revision: str | None = "0011_reconciliation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_pending",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("movement_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bank_reference", sa.String(length=64), nullable=True),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("listed_run_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint(
            "institution_id", "movement_id", name=op.f("pk_reconciliation_pending")
        ),
    )
    with op.batch_alter_table("reconciliation_pending", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_pending_institution_id_listed_run_id_at"),
            ["institution_id", "listed_run_id", "at"],
            unique=False,
        )
    with op.batch_alter_table("banks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("statement_grace_minutes", sa.Integer(), nullable=False, server_default="120")
        )
        batch_op.add_column(
            sa.Column(
                "statement_days", sa.String(length=10), nullable=False, server_default="daily"
            )
        )
        batch_op.add_column(
            sa.Column("statement_due_hours", sa.Integer(), nullable=False, server_default="12")
        )
    with op.batch_alter_table("reconciliation_runs", schema=None) as batch_op:
        batch_op.alter_column("bank_message_id", existing_type=sa.Uuid(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM reconciliation_breaks WHERE type = 'statement_missing'")
    op.execute("DELETE FROM reconciliation_runs WHERE bank_message_id IS NULL")
    with op.batch_alter_table("reconciliation_runs", schema=None) as batch_op:
        batch_op.alter_column("bank_message_id", existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table("banks", schema=None) as batch_op:
        batch_op.drop_column("statement_due_hours")
        batch_op.drop_column("statement_days")
        batch_op.drop_column("statement_grace_minutes")
    with op.batch_alter_table("reconciliation_pending", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_pending_institution_id_listed_run_id_at"))
    op.drop_table("reconciliation_pending")
