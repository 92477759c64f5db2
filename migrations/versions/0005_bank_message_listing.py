"""An index for listing one bank's messages in order (GET /v1/banks/{slug}/messages).

Revision ID: 0005_bank_message_listing
Revises: 0004_banks
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_bank_message_listing"
down_revision: str | None = "0004_banks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bank_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bank_messages_bank_slug_received_at_id"),
            ["bank_slug", "received_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("bank_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_messages_bank_slug_received_at_id"))
