"""The prepaid lifecycle: jurisdictions, API keys, institutions, courses, enrollments, lessons,
payouts, refunds, the instruction outbox and suspense items.

Revision ID: 0003_lifecycle
Revises: 0002_ledger
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_lifecycle"
down_revision: str | None = "0002_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("jurisdiction_code", sa.String(length=32), nullable=True),
        sa.Column("institution_id", sa.Uuid(), nullable=True),
        sa.Column("enrollment_id", sa.Uuid(), nullable=True),
        sa.Column("bank_slug", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin', 'regulator', 'institution', 'parent', 'bank')",
            name=op.f("ck_api_keys_known_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "jurisdictions",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_jurisdictions")),
    )
    op.create_table(
        "institutions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("license_no", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("jurisdiction_code", sa.String(length=32), nullable=False),
        sa.Column("bank_slug", sa.String(length=32), nullable=False),
        sa.Column("escrow_account_no", sa.String(length=40), nullable=False),
        sa.Column("basic_account_no", sa.String(length=40), nullable=False),
        sa.Column("basic_account_name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("list_status", sa.String(length=10), nullable=False),
        sa.Column("alert_level", sa.String(length=10), nullable=False),
        sa.Column("min_balance_floor_fen", sa.BigInteger(), nullable=True),
        sa.Column("bank_balance_fen", sa.BigInteger(), nullable=True),
        sa.Column("bank_balance_as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction_code"],
            ["jurisdictions.code"],
            name=op.f("fk_institutions_jurisdiction_code_jurisdictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institutions")),
        sa.UniqueConstraint("escrow_account_no", name=op.f("uq_institutions_escrow_account_no")),
        sa.UniqueConstraint("uscc", name=op.f("uq_institutions_uscc")),
    )
    op.create_index(
        op.f("ix_institutions_jurisdiction_code"), "institutions", ["jurisdiction_code"]
    )
    op.create_table(
        "courses",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("lesson_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_courses_ends_after_start")),
        sa.CheckConstraint("lesson_price_fen > 0", name=op.f("ck_courses_positive_price")),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_courses_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_courses")),
    )
    op.create_index(op.f("ix_courses_id"), "courses", ["id"])
    op.create_table(
        "instructions",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("payee_account_no", sa.String(length=40), nullable=False),
        sa.Column("payee_name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_instructions_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_instructions")),
    )
    op.create_index(op.f("ix_instructions_id"), "instructions", ["id"])
    op.create_index(
        op.f("ix_instructions_status_created_at"), "instructions", ["status", "created_at"]
    )
    op.create_table(
        "payouts",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("instruction_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_payouts_positive_amount")),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_payouts_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_payouts")),
    )
    op.create_index(op.f("ix_payouts_id"), "payouts", ["id"])
    op.create_table(
        "suspense_items",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bank_slug", sa.String(length=32), nullable=False),
        sa.Column("bank_reference", sa.String(length=64), nullable=False),
        sa.Column("order_no", sa.String(length=32), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_suspense_items_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_suspense_items")),
        sa.UniqueConstraint(
            "institution_id",
            "bank_slug",
            "bank_reference",
            name=op.f("uq_suspense_items_institution_id_bank_slug_bank_reference"),
        ),
    )
    op.create_table(
        "enrollments",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("order_no", sa.String(length=32), nullable=False),
        sa.Column("student_name", sa.String(length=100), nullable=False),
        sa.Column("student_id_hash", sa.String(length=64), nullable=False),
        sa.Column("student_id_masked", sa.String(length=18), nullable=False),
        sa.Column("payer_name", sa.String(length=100), nullable=False),
        sa.Column("payer_phone", sa.String(length=20), nullable=False),
        sa.Column("lessons", sa.Integer(), nullable=False),
        sa.Column("lesson_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("loan_funded", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("lessons_confirmed", sa.Integer(), nullable=False),
        sa.Column("lessons_pending", sa.Integer(), nullable=False),
        sa.Column("lessons_disputed", sa.Integer(), nullable=False),
        sa.Column("confirmed_fen", sa.BigInteger(), nullable=False),
        sa.Column("pending_fen", sa.BigInteger(), nullable=False),
        sa.Column("disputed_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("lessons > 0", name=op.f("ck_enrollments_positive_lessons")),
        sa.CheckConstraint(
            "lessons_confirmed + lessons_pending + lessons_disputed <= lessons",
            name=op.f("ck_enrollments_lessons_within_purchase"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id", "course_id"],
            ["courses.institution_id", "courses.id"],
            name=op.f("fk_enrollments_institution_id_course_id_courses"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint(
            "institution_id", "order_no", name=op.f("uq_enrollments_institution_id_order_no")
        ),
    )
    op.create_index(op.f("ix_enrollments_id"), "enrollments", ["id"])
    op.create_index(
        op.f("ix_enrollments_institution_id_course_id_student_id_hash"),
        "enrollments",
        ["institution_id", "course_id", "student_id_hash"],
    )
    op.create_index(op.f("ix_enrollments_order_no"), "enrollments", ["order_no"])
    op.create_index(
        op.f("ix_enrollments_status_expires_at"), "enrollments", ["status", "expires_at"]
    )
    op.create_table(
        "lessons",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("enrollment_id", sa.Uuid(), nullable=False),
        sa.Column("lesson_key", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_no", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("confirm_due_on", sa.Date(), nullable=False),
        sa.Column("dispute_reason", sa.String(length=500), nullable=True),
        sa.Column("decided_by", sa.String(length=20), nullable=True),
        sa.Column("resolution_note", sa.String(length=500), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("count > 0", name=op.f("ck_lessons_positive_count")),
        sa.ForeignKeyConstraint(
            ["institution_id", "enrollment_id"],
            ["enrollments.institution_id", "enrollments.id"],
            name=op.f("fk_lessons_institution_id_enrollment_id_enrollments"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_lessons")),
        sa.UniqueConstraint(
            "institution_id", "lesson_key", name=op.f("uq_lessons_institution_id_lesson_key")
        ),
    )
    op.create_index(op.f("ix_lessons_id"), "lessons", ["id"])
    op.create_index(
        op.f("ix_lessons_institution_id_enrollment_id"),
        "lessons",
        ["institution_id", "enrollment_id"],
    )
    op.create_index(
        op.f("ix_lessons_status_confirm_due_on"), "lessons", ["status", "confirm_due_on"]
    )
    op.create_table(
        "refunds",
        sa.Column("institution_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("enrollment_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("respond_by", sa.Date(), nullable=False),
        sa.Column("reject_reason", sa.String(length=500), nullable=True),
        sa.Column("decided_by", sa.String(length=20), nullable=True),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("instruction_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id", "enrollment_id"],
            ["enrollments.institution_id", "enrollments.id"],
            name=op.f("fk_refunds_institution_id_enrollment_id_enrollments"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "id", name=op.f("pk_refunds")),
    )
    op.create_index(op.f("ix_refunds_id"), "refunds", ["id"])
    op.create_index(op.f("ix_refunds_status_respond_by"), "refunds", ["status", "respond_by"])


def downgrade() -> None:
    op.drop_index(op.f("ix_refunds_status_respond_by"), "refunds")
    op.drop_index(op.f("ix_refunds_id"), "refunds")
    op.drop_table("refunds")
    op.drop_index(op.f("ix_lessons_status_confirm_due_on"), "lessons")
    op.drop_index(op.f("ix_lessons_institution_id_enrollment_id"), "lessons")
    op.drop_index(op.f("ix_lessons_id"), "lessons")
    op.drop_table("lessons")
    op.drop_index(op.f("ix_enrollments_status_expires_at"), "enrollments")
    op.drop_index(op.f("ix_enrollments_order_no"), "enrollments")
    op.drop_index(op.f("ix_enrollments_institution_id_course_id_student_id_hash"), "enrollments")
    op.drop_index(op.f("ix_enrollments_id"), "enrollments")
    op.drop_table("enrollments")
    op.drop_table("suspense_items")
    op.drop_index(op.f("ix_payouts_id"), "payouts")
    op.drop_table("payouts")
    op.drop_index(op.f("ix_instructions_status_created_at"), "instructions")
    op.drop_index(op.f("ix_instructions_id"), "instructions")
    op.drop_table("instructions")
    op.drop_index(op.f("ix_courses_id"), "courses")
    op.drop_table("courses")
    op.drop_index(op.f("ix_institutions_jurisdiction_code"), "institutions")
    op.drop_table("institutions")
    op.drop_table("jurisdictions")
    op.drop_table("api_keys")
