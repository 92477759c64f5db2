"""The alert engine: the numbers each alert opened with, and every change of an institution's
alert level (from, to, cause, who or what, when), insert-only.

Revision ID: 0015_alert_engine
Revises: 0014_statement_day_reads
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_alert_engine"
down_revision: str | None = "0014_statement_day_reads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("figures", sa.JSON(), nullable=True))
    op.create_table(
        "alert_level_changes",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("from_level", sa.String(length=10), nullable=False),
        sa.Column("to_level", sa.String(length=10), nullable=False),
        sa.Column("cause", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_alert_level_changes_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_alert_level_changes")),
    )
    with op.batch_alter_table("alert_level_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_level_changes_institution_id_changed_at"),
            ["institution_id", "changed_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("alert_level_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_level_changes_institution_id_changed_at"))
    op.drop_table("alert_level_changes")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("figures")
