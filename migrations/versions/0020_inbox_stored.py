"""The inbox acknowledges a payment once stored and credits it right after: a stored message keeps
the one escrow account its payments name, so the crediting worker can group messages by
institution without reading their bodies.

Revision ID: 0020_inbox_stored
Revises: 0019_opening_balances
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_inbox_stored"
down_revision: str | None = "0019_opening_balances"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bank_messages") as batch_op:
        batch_op.add_column(sa.Column("account_no", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bank_messages") as batch_op:
        batch_op.drop_column("account_no")
