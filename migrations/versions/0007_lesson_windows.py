"""The days an enrollment's payment covers (valid_from, valid_until), inside which its lessons fall.

Enrollments made before were checked against their course's span (the prepay cap counted the
course's length), so that span is their validity.

Revision ID: 0007_lesson_windows
Revises: 0006_bank_binding
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_lesson_windows"
down_revision: str | None = "0006_bank_binding"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("valid_until", sa.Date(), nullable=True))
    op.execute(
        "UPDATE enrollments SET "
        "valid_from = (SELECT starts_on FROM courses WHERE courses.institution_id = "
        "enrollments.institution_id AND courses.id = enrollments.course_id), "
        "valid_until = (SELECT ends_on FROM courses WHERE courses.institution_id = "
        "enrollments.institution_id AND courses.id = enrollments.course_id)"
    )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.alter_column("valid_from", existing_type=sa.Date(), nullable=False)
        batch_op.alter_column("valid_until", existing_type=sa.Date(), nullable=False)
        batch_op.create_check_constraint(
            op.f("ck_enrollments_validity_in_order"), "valid_until >= valid_from"
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_enrollments_validity_in_order"), type_="check")
        batch_op.drop_column("valid_until")
        batch_op.drop_column("valid_from")
