"""Complaints (投诉举报): a parent complains about the enrollment its key is for, optionally about one
of its lessons, which is then disputed through the lesson dispute path in the same transaction;
the regulator of the institution's jurisdiction resolves it.

Only the parent files: the institution is what a complaint is about, and a regulator acts on its
own (freeze, wind-down, a dispute's resolution). A lesson no longer pending (confirmed by the
parent, auto-confirmed after the working days to answer, resolved) or past its time to answer is
not disputed: its money may be paid out already, and the dispute path refuses it; the complaint is
filed all the same (`lesson_disputed: false`) for the regulator to look into.

A burst (`complaint_burst_count` open complaints about one institution filed within
`complaint_burst_days`, both in the jurisdiction's profile) raises a YELLOW `complaint_burst`
alert; resolving complaints below the count closes it. `settle_complaint_burst` decides both, and
is what a scheduled job calls to close a burst whose complaints have aged out of the window.

The text is the parent's and may name the child: it is stored and shown to the parent and the
regulator, never logged.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.engine import close_alert, evaluate
from app.alerts.service import raise_alert
from app.audit.service import record
from app.auth.principal import ParentPrincipal, Principal
from app.auth.scope import scoped, scoped_page
from app.balances.service import profile_of
from app.complaints.errors import ComplaintNotFound, ComplaintResolved
from app.complaints.schemas import ComplaintCreate, ComplaintResolution
from app.db.unit import Database
from app.enrollments.repository import visible_enrollment
from app.kit.pagination import PageRequest
from app.lessons import repository as lesson_repository
from app.lessons.errors import ConfirmationWindowClosed, LessonNotFound, LessonNotPending
from app.lessons.service import dispute_lesson
from app.lessons.types import LessonRow
from app.models import Alert, Complaint, Institution, Lesson
from app.models.alert import AlertKind
from app.models.complaint import ComplaintStatus
from app.models.institution import AlertLevel
from app.models.lesson import LessonStatus

MAX_DISPUTE_REASON = 500


async def file_complaint(
    session: AsyncSession, caller: ParentPrincipal, body: ComplaintCreate, now: datetime
) -> Complaint:
    enrollment = await visible_enrollment(session, caller, body.enrollment_id)
    await _locked_institution(session, enrollment.institution_id)
    disputed = False
    if body.lesson_id is not None:
        lesson: Lesson | LessonRow = await lesson_repository.visible_lesson(
            session, caller, body.lesson_id, lock=True
        )
        if lesson.enrollment_id != enrollment.id:
            raise LessonNotFound(f"no lesson {body.lesson_id} in enrollment {enrollment.id}")
        try:
            lesson = await dispute_lesson(
                session, caller, lesson.id, f"complaint: {body.text}"[:MAX_DISPUTE_REASON], now
            )
        except (LessonNotPending, ConfirmationWindowClosed):
            pass  # refused before anything changed: the complaint stands on its own
        disputed = lesson.status == LessonStatus.disputed
    complaint = Complaint(
        institution_id=enrollment.institution_id,
        id=uuid.uuid4(),
        enrollment_id=enrollment.id,
        lesson_id=body.lesson_id,
        category=body.category,
        text=body.text,
        lesson_disputed=disputed,
        status=ComplaintStatus.open,
        created_at=now,
    )
    session.add(complaint)
    await session.flush()
    await settle_complaint_burst(session, enrollment.institution_id, now, actor="parent")
    return complaint


async def resolve_complaint(
    session: AsyncSession,
    caller: Principal,
    complaint_id: UUID,
    body: ComplaintResolution,
    now: datetime,
) -> Complaint:
    """The regulator's decision, once: `409 complaint_resolved` after (two at once: the row lock
    lets the first decide)."""
    complaint = await scoped(session, caller, Complaint, complaint_id, lock=True)
    if complaint is None:
        raise ComplaintNotFound(f"no complaint {complaint_id}")
    if complaint.status != ComplaintStatus.open:
        raise ComplaintResolved(
            f"complaint {complaint_id} was resolved ({complaint.outcome})",
            outcome=complaint.outcome,
        )
    complaint.status = ComplaintStatus.resolved
    complaint.outcome = body.outcome
    complaint.note = body.note
    complaint.resolved_by = caller.identity
    complaint.resolved_at = now
    await session.flush()
    await record(
        session,
        "complaint.resolve",
        actor=caller,
        institution_id=complaint.institution_id,
        object_type="complaint",
        object_id=complaint.id,
        details={"outcome": body.outcome, "note": body.note},
    )
    await settle_complaint_burst(session, complaint.institution_id, now, actor=caller.identity)
    return complaint


async def visible_complaint(
    session: AsyncSession, caller: Principal, complaint_id: UUID
) -> Complaint:
    """The complaint, to its parent and whoever sees its institution; else 404."""
    complaint = await scoped(
        session, caller, Complaint, complaint_id, enrollment_of=lambda found: found.enrollment_id
    )
    if complaint is None:
        raise ComplaintNotFound(f"no complaint {complaint_id}")
    return complaint


async def page(
    session: AsyncSession,
    caller: Principal,
    institution_id: UUID | None,
    status: ComplaintStatus | None,
    page_request: PageRequest,
) -> tuple[Sequence[Complaint], str | None]:
    return await scoped_page(
        session, caller, Complaint, page_request, institution_id=institution_id, status=status
    )


async def _locked_institution(session: AsyncSession, institution_id: UUID) -> Institution:
    """The institution's row lock makes complaints about it count one after the other, so a burst
    raises one alert. Taken first, before the lesson and the enrollment, as enrollments and
    payouts take it before theirs."""
    institution = await session.scalar(
        select(Institution).where(Institution.id == institution_id).with_for_update()
    )
    assert institution is not None  # the complaint's institution: it holds the complaint's key
    return institution


def is_burst(open_in_window: int, burst_count: int) -> bool:
    """The burst rule: at least `burst_count` open complaints filed within the window."""
    return open_in_window >= burst_count


async def settle_complaint_burst(
    session: AsyncSession, institution_id: UUID, now: datetime, *, actor: str
) -> None:
    """Raise the institution's complaint_burst alert when its open complaints of the last
    `complaint_burst_days` reach `complaint_burst_count`, close it when they no longer do."""
    institution = await _locked_institution(session, institution_id)
    profile = await profile_of(session, institution)
    open_in_window = await session.scalar(
        select(func.count())
        .select_from(Complaint)
        .where(
            Complaint.institution_id == institution_id,
            Complaint.status == ComplaintStatus.open,
            Complaint.created_at >= now - timedelta(days=profile.complaint_burst_days),
        )
    )
    open_alerts = (
        await session.scalars(
            select(Alert.key).where(
                Alert.institution_id == institution_id,
                Alert.kind == AlertKind.complaint_burst,
                Alert.closed_at.is_(None),
            )
        )
    ).all()
    prefix = f"{AlertKind.complaint_burst}:"
    if is_burst(open_in_window or 0, profile.complaint_burst_count):
        if open_alerts:
            return
        # A key per episode: a burst after one that closed is a new alert.
        await raise_alert(
            session,
            institution_id,
            AlertKind.complaint_burst,
            AlertLevel.yellow,
            key=now.strftime("%Y%m%dT%H%M%S.%f"),
            reason=(
                f"{open_in_window} open complaints filed within "
                f"{profile.complaint_burst_days} days (threshold "
                f"{profile.complaint_burst_count})"
            ),
        )
        await evaluate(session, institution_id, now, cause="complaint burst", actor=actor)
        return
    for key in open_alerts:
        await close_alert(
            session,
            institution_id,
            AlertKind.complaint_burst,
            key.removeprefix(prefix),
            now=now,
            reason=f"{open_in_window} open complaints within {profile.complaint_burst_days} days",
            actor=actor,
        )


async def settle_aged_bursts(db: Database, as_of: datetime) -> int:
    """Close the complaint_burst alerts whose complaints have aged out of the window (or were
    resolved) by `as_of`: each institution with one open, in a transaction of its own. Part of the
    `evaluate_alerts` job. Returns how many institutions it settled."""
    institution_ids = await db.run(_institutions_with_open_bursts)
    for institution_id in institution_ids:
        await db.run(
            partial(
                settle_complaint_burst,
                institution_id=institution_id,
                now=as_of,
                actor="job:evaluate_alerts",
            )
        )
    return len(institution_ids)


async def _institutions_with_open_bursts(session: AsyncSession) -> list[UUID]:
    return list(
        await session.scalars(
            select(Alert.institution_id)
            .where(Alert.kind == AlertKind.complaint_burst, Alert.closed_at.is_(None))
            .distinct()
        )
    )
