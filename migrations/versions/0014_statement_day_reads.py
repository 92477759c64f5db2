"""A statement's day read by index (an institution's payments and instructions by time), and a
bank's stored files compressed with lz4 where PostgreSQL has it (a hundred-megabyte statement is
stored in half pglz's time).

Revision ID: 0014_statement_day_reads
Revises: 0013_break_lookup
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_statement_day_reads"
down_revision: str | None = "0013_break_lookup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A server built without lz4 keeps pglz: the column's compression is a matter of speed only.
_LZ4 = """
DO $$
BEGIN
    IF 'lz4' = ANY (SELECT unnest(enumvals) FROM pg_settings
                    WHERE name = 'default_toast_compression') THEN
        ALTER TABLE bank_messages ALTER COLUMN body SET COMPRESSION {method};
    END IF;
END $$
"""


def upgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_enrollments_institution_id_paid_at"),
            ["institution_id", "paid_at"],
            unique=False,
        )
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_instructions_institution_id_sent_at"),
            ["institution_id", "sent_at"],
            unique=False,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_LZ4.format(method="lz4"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_LZ4.format(method="pglz"))
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instructions_institution_id_sent_at"))
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollments_institution_id_paid_at"))
