"""Breaks found by id alone (a regulator closes one by its id) and listed across institutions by
the moment they opened.

Revision ID: 0013_break_lookup
Revises: 0012_reconciliation_life
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_break_lookup"
down_revision: str | None = "0012_reconciliation_life"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reconciliation_breaks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reconciliation_breaks_id"), ["id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_reconciliation_breaks_opened_at_id"), ["opened_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_breaks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_breaks_opened_at_id"))
        batch_op.drop_index(batch_op.f("ix_reconciliation_breaks_id"))
