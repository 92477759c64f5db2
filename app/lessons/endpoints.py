from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from app.auth.dependencies import CurrentPrincipal, InstitutionCaller, Parent, require
from app.auth.principal import Principal
from app.db.unit import Db
from app.kit.clock import utcnow
from app.kit.errors import DomainError
from app.kit.pagination import Page, PageParams
from app.lessons import repository, service
from app.lessons.group_commit import LessonWriter
from app.lessons.schemas import (
    BatchItemResult,
    BatchResult,
    Dispute,
    ItemStatus,
    LessonBatch,
    LessonCreate,
    LessonItem,
    LessonOut,
    Resolution,
)
from app.lessons.types import LessonRow
from app.models import Lesson
from app.models.api_key import Role
from app.models.lesson import LessonStatus

router = APIRouter(tags=["lessons"])

Resolver = Annotated[Principal, Depends(require(Role.regulator, Role.institution))]


@router.post(
    "/v1/enrollments/{enrollment_id}/lessons",
    status_code=201,
    response_model=LessonOut,
    responses={
        200: {"model": LessonOut, "description": "The key was recorded before: that lesson"}
    },
    summary="Record a delivered lesson (institution)",
    description=(
        "Records `count` lessons of the enrollment as given at `occurred_at`, priced by the "
        "remainder rule, `pending_confirmation` until the parent confirms or disputes, or until "
        "`parent_auto_confirm_workdays` working days (China's calendar) have passed, counted from "
        "the later of `occurred_at` and the moment it is recorded: a late record gives the parent "
        "no less time. Idempotent on `lesson_key`: the same key with the same enrollment, "
        "`occurred_at` and `count` returns the first lesson with `200` (whatever its status now); "
        "with anything else it is `409 lesson_key_reused`. Refusals: `409 enrollment_not_active` "
        "(also while a refund is on its way to the payer), `409 lessons_exhausted` (more lessons "
        "than purchased), `422 occurred_in_future` (beyond 5 minutes of clock skew), "
        "`422 lesson_too_old` (more than `max_lesson_backdate_days` days ago), "
        "`422 lesson_before_payment` (before the bank's time of the payment, beyond the same "
        "skew), "
        "`422 lesson_outside_validity` (on a day outside `valid_from` to `valid_until`), "
        "`422 calendar_not_published`, `404 enrollment_not_found`. On PostgreSQL, records "
        "sent at once without an `Idempotency-Key` are committed together (group commit); "
        "each is answered exactly as if it were alone."
    ),
)
async def record_lesson(
    enrollment_id: UUID,
    body: LessonCreate,
    caller: InstitutionCaller,
    db: Db,
    request: Request,
    response: Response,
) -> LessonRow:
    institution_id = caller.institution_id
    item = LessonItem(enrollment_id=enrollment_id, **body.model_dump())
    writer: LessonWriter | None = request.app.state.lesson_writer
    if writer is not None and db.request_transaction is None:
        # No connection of its own: the process's group commit records it with concurrent ones.
        # (With an Idempotency-Key the record joins the request's transaction, which holds the
        # key's record too.)
        recorded = await writer.record(institution_id, item)
    else:
        recorded = await db.run(
            lambda session: service.record_lesson(session, institution_id, item, utcnow())
        )
    if not recorded.created:
        response.status_code = 200
    return recorded.lesson


def _item_result(item: LessonItem, outcome: service.Outcome) -> BatchItemResult:
    if isinstance(outcome, DomainError):
        return BatchItemResult(
            lesson_key=item.lesson_key,
            status=ItemStatus.refused,
            code=outcome.code,
            detail=outcome.detail,
        )
    return BatchItemResult(
        lesson_key=item.lesson_key,
        status=ItemStatus.accepted if outcome.created else ItemStatus.replayed,
        id=outcome.lesson.id,
        amount_fen=outcome.lesson.amount_fen,
    )


@router.post(
    "/v1/lessons/batch",
    response_model=BatchResult,
    summary="Record up to 1,000 lessons (institution)",
    description=(
        "Each item is recorded exactly as by `POST /v1/enrollments/{id}/lessons`, in the order "
        "sent, and accepted or refused on its own: a refused item changes nothing and does not "
        "stop the others. Each result is `accepted` (with `id`), `replayed` (the key recorded "
        "this lesson before: its `id`) or `refused` with the problem `code` the single call "
        "would give (e.g. `lessons_exhausted`, `lesson_key_reused`, `enrollment_not_found`)."
    ),
)
async def record_batch(body: LessonBatch, caller: InstitutionCaller, db: Db) -> BatchResult:
    institution_id = caller.institution_id
    outcomes = await db.run(
        lambda session: service.record_lessons(session, institution_id, body.items, utcnow())
    )
    return BatchResult(
        results=[
            _item_result(item, outcome) for item, outcome in zip(body.items, outcomes, strict=True)
        ]
    )


@router.get(
    "/v1/enrollments/{enrollment_id}/lessons",
    response_model=Page[LessonOut],
    summary="An enrollment's lessons",
    description=(
        "In the order they were given, `limit` per page; pass `next_cursor` back as `cursor` "
        "for more. To the enrollment's institution and parent (and its regulator and the "
        "operator); anyone else gets 404."
    ),
)
async def list_lessons(
    enrollment_id: UUID,
    caller: CurrentPrincipal,
    db: Db,
    page: PageParams,
    status: LessonStatus | None = None,
) -> Page[LessonOut]:
    rows, next_cursor = await db.run(
        lambda session: service.enrollment_lessons(session, caller, enrollment_id, status, page)
    )
    return Page[LessonOut](
        items=[LessonOut.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.get(
    "/v1/lessons/{lesson_id}",
    response_model=LessonOut,
    summary="A lesson and its status",
    description="To its institution, the enrollment's parent and the jurisdiction's regulator.",
)
async def get_lesson(lesson_id: UUID, caller: CurrentPrincipal, db: Db) -> Lesson:
    return await db.run(lambda session: repository.visible_lesson(session, caller, lesson_id))


@router.post(
    "/v1/lessons/{lesson_id}/confirm",
    response_model=LessonOut,
    summary="Confirm a lesson (parent)",
    description=(
        "The lesson was given: its money becomes releasable to the institution. Confirming a "
        "confirmed lesson again returns it unchanged; any other status is "
        "`409 lesson_not_pending`."
    ),
)
async def confirm_lesson(lesson_id: UUID, caller: Parent, db: Db) -> LessonRow:
    return await db.run(
        lambda session: service.confirm_lesson(session, caller, lesson_id, utcnow())
    )


@router.post(
    "/v1/lessons/{lesson_id}/dispute",
    response_model=LessonOut,
    summary="Dispute a lesson (parent)",
    description=(
        "The lesson's money stays held until the regulator or the institution resolves the "
        "dispute. Only a lesson pending confirmation (`409 lesson_not_pending`), and only until "
        "the end of its `confirm_due_on` (`409 confirmation_window_closed`)."
    ),
)
async def dispute_lesson(lesson_id: UUID, body: Dispute, caller: Parent, db: Db) -> LessonRow:
    return await db.run(
        lambda session: service.dispute_lesson(session, caller, lesson_id, body.reason, utcnow())
    )


@router.post(
    "/v1/lessons/{lesson_id}/resolve",
    response_model=LessonOut,
    summary="Resolve a disputed lesson (regulator, or the institution conceding)",
    description=(
        "For the institution (regulator only; an institution asking is "
        "`403 resolution_forbidden`): released like a confirmed lesson, status "
        "`resolved_for_institution`. For the parent: status `resolved_for_parent`, and the "
        "lesson's money returns to the refundable balance. Only disputed lessons "
        "(`409 lesson_not_disputed`)."
    ),
)
async def resolve_dispute(lesson_id: UUID, body: Resolution, caller: Resolver, db: Db) -> LessonRow:
    return await db.run(
        lambda session: service.resolve_dispute(
            session, caller, lesson_id, body.in_favor_of, body.note, utcnow()
        )
    )
