"""A bank speaks only for its own accounts and instructions; refunds by the original route.

- alerts name the bank message they are about (a foreign message, a debit without instruction);
- enrollments keep who paid, as the bank's notification says, for the refund by the original route;
- an instruction's payee account may be absent (a refund the bank routes by the payment's reference).

Revision ID: 0006_bank_binding
Revises: 0005_bank_message_listing
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_bank_binding"
down_revision: str | None = "0005_bank_message_listing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bank_message_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_bank_message_id_bank_messages"),
            "bank_messages",
            ["bank_message_id"],
            ["id"],
        )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payment_payer_name", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("payment_payer_account_no", sa.String(length=40), nullable=True)
        )
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.alter_column("payee_account_no", existing_type=sa.String(length=40), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.alter_column(
            "payee_account_no", existing_type=sa.String(length=40), nullable=False
        )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_column("payment_payer_account_no")
        batch_op.drop_column("payment_payer_name")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_alerts_bank_message_id_bank_messages"), type_="foreignkey"
        )
        batch_op.drop_column("bank_message_id")
