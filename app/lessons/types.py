"""Recording's rows as plain objects: recording a batch of a thousand lessons reads and writes them
in a handful of Core statements (app.lessons.repository), and an ORM object per row would cost
more Python than the rules themselves."""

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from app.models.enrollment import refund_under_way


@dataclass(slots=True)
class LockedEnrollment:
    """An enrollment as recording sees it under its row lock: what was bought, the days it covers,
    and the counters a new lesson changes (kept here as the batch goes, then written back once)."""

    id: UUID
    status: str
    lessons: int
    amount_fen: int
    refunded_fen: int
    paid_at: datetime | None
    valid_from: date
    valid_until: date
    lessons_confirmed: int
    lessons_pending: int
    lessons_disputed: int
    confirmed_fen: int
    pending_fen: int
    disputed_fen: int

    @property
    def lessons_used(self) -> int:
        return self.lessons_confirmed + self.lessons_pending + self.lessons_disputed

    @property
    def held_fen(self) -> int:
        """What its lessons hold of the amount: confirmed, pending or disputed."""
        return self.confirmed_fen + self.pending_fen + self.disputed_fen

    @property
    def refund_under_way(self) -> bool:
        return refund_under_way(self.status, self.refunded_fen)

    def hold(self, count: int, amount_fen: int) -> None:
        """Count a newly recorded lesson as pending."""
        self.lessons_pending += count
        self.pending_fen += amount_fen


@dataclass(frozen=True, slots=True)
class LessonRow:
    """A lesson as recording answers with it (`LessonOut` reads its attributes): a new one, or the
    one an earlier record of the same key made, as it is now."""

    id: UUID
    enrollment_id: UUID
    lesson_key: str
    status: str
    count: int
    first_no: int
    amount_fen: int
    occurred_at: datetime
    confirm_due_on: date
    dispute_reason: str | None
    decided_by: str | None
    decided_at: datetime | None
    resolution_note: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AnsweredLesson:
    """A lesson being answered, resolved or released, and its enrollment, both under their row
    locks; with the ledger accounts a release posts to (None when not open yet)."""

    institution_id: UUID
    lesson: LessonRow
    enrollment: LockedEnrollment
    prepaid_account_id: UUID | None
    releasable_account_id: UUID | None
