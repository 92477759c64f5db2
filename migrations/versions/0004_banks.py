"""Banks: their configuration, the inbox of bank messages, security events, nonces, alerts, and
what the outbox needs to send and follow instructions.

Revision ID: 0004_banks
Revises: 0003_lifecycle
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_banks"
down_revision: str | None = "0003_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bank_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bank_slug", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=20), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=True),
        sa.Column("verification", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("signature_headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_messages")),
        sa.UniqueConstraint(
            "bank_slug", "message_id", name=op.f("uq_bank_messages_bank_slug_message_id")
        ),
    )
    with op.batch_alter_table("bank_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bank_messages_status_received_at"),
            ["status", "received_at"],
            unique=False,
        )

    op.create_table(
        "bank_nonces",
        sa.Column("bank_slug", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bank_slug", "nonce", name=op.f("pk_bank_nonces")),
    )
    with op.batch_alter_table("bank_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bank_nonces_seen_at"), ["seen_at"], unique=False)

    op.create_table(
        "banks",
        sa.Column("slug", sa.String(length=32), nullable=False),
        sa.Column("adapter", sa.String(length=20), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("sealed_config", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_banks")),
    )
    op.create_table(
        "security_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bank_slug", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.Column("bank_message_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_message_id"],
            ["bank_messages.id"],
            name=op.f("fk_security_events_bank_message_id_bank_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_events")),
    )
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_security_events_bank_slug"), ["bank_slug"], unique=False
        )

    op.create_table(
        "alerts",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_alerts_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("institution_id", "key", name=op.f("uq_alerts_institution_id_key")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alerts_closed_at_opened_at"), ["closed_at", "opened_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_alerts_id"), ["id"], unique=False)

    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payment_reference", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("payment_channel_order_id", sa.String(length=64), nullable=True)
        )

    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bank_slug", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("memo", sa.String(length=140), nullable=True))
        batch_op.add_column(sa.Column("order_no", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("payment_reference", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("payment_channel_order_id", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("bank_code", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("detail", sa.String(length=500), nullable=True))
        batch_op.drop_index(batch_op.f("ix_instructions_status_created_at"))
        batch_op.create_index(
            batch_op.f("ix_instructions_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )

    # Instructions written before this revision go to their institution's bank.
    op.execute(
        "UPDATE instructions SET memo = kind, bank_slug = (SELECT institutions.bank_slug"
        " FROM institutions WHERE institutions.id = instructions.institution_id)"
    )
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.alter_column("bank_slug", existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column("memo", existing_type=sa.String(length=140), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instructions_status_next_attempt_at"))
        batch_op.create_index(
            batch_op.f("ix_instructions_status_created_at"), ["status", "created_at"], unique=False
        )
        batch_op.drop_column("detail")
        batch_op.drop_column("bank_code")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("payment_channel_order_id")
        batch_op.drop_column("payment_reference")
        batch_op.drop_column("order_no")
        batch_op.drop_column("memo")
        batch_op.drop_column("bank_slug")

    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_column("payment_channel_order_id")
        batch_op.drop_column("payment_reference")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_id"))
        batch_op.drop_index(batch_op.f("ix_alerts_closed_at_opened_at"))

    op.drop_table("alerts")
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_security_events_bank_slug"))

    op.drop_table("security_events")
    op.drop_table("banks")
    with op.batch_alter_table("bank_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_nonces_seen_at"))

    op.drop_table("bank_nonces")
    with op.batch_alter_table("bank_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_messages_status_received_at"))

    op.drop_table("bank_messages")
