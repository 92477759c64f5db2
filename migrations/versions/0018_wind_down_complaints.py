"""Winding an institution down (wind_downs, and the wind-down a refund belongs to) and parents'
complaints (complaints).

Revision ID: 0018_wind_down_complaints
Revises: 0017_audit_trail
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_wind_down_complaints"
down_revision: str | None = "0017_audit_trail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wind_downs",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("ordered_by", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_enrollment_id", sa.Uuid(), nullable=True),
        sa.Column("enrollments_covered", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_wind_downs_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("institution_id", name=op.f("pk_wind_downs")),
        sa.UniqueConstraint("id", name=op.f("uq_wind_downs_id")),
    )
    op.create_table(
        "complaints",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("enrollment_id", sa.Uuid(), nullable=False),
        sa.Column("lesson_id", sa.Uuid(), nullable=True),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lesson_disputed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("resolved_by", sa.String(length=80), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id", "enrollment_id"],
            ["enrollments.institution_id", "enrollments.id"],
            name=op.f("fk_complaints_institution_id_enrollment_id_enrollments"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_complaints")),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_complaints_created_at_id"), ["created_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_complaints_id"), ["id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_complaints_institution_id_status_created_at"),
            ["institution_id", "status", "created_at"],
            unique=False,
        )

    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wind_down_id", sa.Uuid(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_refunds_wind_down_id_enrollment_id"), ["wind_down_id", "enrollment_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_refunds_wind_down_id_enrollment_id"), type_="unique"
        )
        batch_op.drop_column("wind_down_id")

    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaints_institution_id_status_created_at"))
        batch_op.drop_index(batch_op.f("ix_complaints_id"))
        batch_op.drop_index(batch_op.f("ix_complaints_created_at_id"))

    op.drop_table("complaints")
    op.drop_table("wind_downs")
