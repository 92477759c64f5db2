"""Opening balances (存量): the files imported, one row each, unique by their SHA-256 per
institution.

Revision ID: 0019_opening_balances
Revises: 0018_wind_down_complaints
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_opening_balances"
down_revision: str | None = "0018_wind_down_complaints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "opening_imports",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("statement_run_id", sa.Uuid(), nullable=False),
        sa.Column("statement_opening_fen", sa.BigInteger(), nullable=False),
        sa.Column("imported_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_opening_imports")),
        sa.UniqueConstraint(
            "institution_id",
            "file_sha256",
            name=op.f("uq_opening_imports_institution_id_file_sha256"),
        ),
    )


def downgrade() -> None:
    op.drop_table("opening_imports")
