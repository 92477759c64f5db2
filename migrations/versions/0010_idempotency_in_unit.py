"""Idempotency records are written in the request's own transaction, and sealed.

No "in progress" rows any more (a request's lease on its key is a lock held by its transaction):
those left by earlier versions are dropped. Completed responses are kept, sealed under SECRET_KEY
as the service now stores them, so replays keep working across the upgrade and no key issued
earlier (a parent's, an operator's) stays readable at rest.

Revision ID: 0010_idempotency_in_unit
Revises: 0008_ledger_guards
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.config import get_settings
from app.kit.sealing import seal, unseal

revision: str = "0010_idempotency_in_unit"
down_revision: str | None = "0008_ledger_guards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED_RESPONSE = "idempotent response"  # as app.idempotency.repository seals them


def _secret() -> str:
    return get_settings().secret_key.get_secret_value()


def upgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM idempotency_records WHERE status <> 'completed'"))
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response", sa.LargeBinary(), nullable=True))
    rows = bind.execute(
        sa.text(
            "SELECT caller, key, response_status, response_headers, response_body"
            " FROM idempotency_records"
        )
    ).all()
    for row in rows:
        headers = row.response_headers
        if isinstance(headers, str):
            headers = json.loads(headers)
        document = json.dumps({"status": row.response_status, "headers": headers or {}})
        sealed = seal(
            _secret(), SEALED_RESPONSE, document.encode() + b"\n" + bytes(row.response_body)
        )
        bind.execute(
            sa.text(
                "UPDATE idempotency_records SET response = :sealed WHERE caller = :c AND key = :k"
            ),
            {"sealed": sealed, "c": row.caller, "k": row.key},
        )
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_idempotency_records_known_status"), type_="check")
        batch_op.drop_column("status")
        batch_op.drop_column("response_status")
        batch_op.drop_column("response_headers")
        batch_op.drop_column("response_body")
        batch_op.alter_column("response", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.create_index(
            batch_op.f("ix_idempotency_records_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_records_expires_at"))
        batch_op.add_column(sa.Column("status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("response_status", sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column("response_headers", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("response_body", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    for row in bind.execute(sa.text("SELECT caller, key, response FROM idempotency_records")).all():
        document, _, body = unseal(_secret(), SEALED_RESPONSE, bytes(row.response)).partition(b"\n")
        meta = json.loads(document)
        bind.execute(
            sa.text(
                "UPDATE idempotency_records SET status = 'completed', response_status = :s,"
                " response_headers = :h, response_body = :b WHERE caller = :c AND key = :k"
            ),
            {
                "s": meta["status"],
                "h": json.dumps(meta["headers"]),
                "b": body,
                "c": row.caller,
                "k": row.key,
            },
        )
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.alter_column("status", existing_type=sa.String(length=20), nullable=False)
        batch_op.drop_column("response")
        batch_op.create_check_constraint(
            batch_op.f("ck_idempotency_records_known_status"),
            "status IN ('in_progress', 'completed')",
        )
