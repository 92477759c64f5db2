from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body

from app.auth.dependencies import CurrentPrincipal, InstitutionCaller, InstitutionViewer
from app.db.unit import Db
from app.kit.clock import utcnow
from app.kit.pagination import Page, PageParams
from app.models import Payout
from app.models.payout import PayoutStatus
from app.payouts import repository, service
from app.payouts.schemas import PayoutOut, PayoutRequest

router = APIRouter(prefix="/v1/payouts", tags=["payouts"])


@router.post(
    "",
    status_code=201,
    response_model=PayoutOut,
    summary="Ask for a payout of releasable money",
    description=(
        "Pays released lesson money to the institution's basic account. The amount may be "
        "omitted, and so may the whole body: the payout is then the balance view's "
        "`payout_allowance_fen`, the most the minimum-balance rule (DOMAIN.md rule 8) allows now. "
        "Refusals, each carrying the balance view's figures (and `requested_fen` when an amount "
        "was asked): `409 payouts_suspended` (alert level YELLOW, RED or FROZEN, or the "
        "institution frozen or blacklisted; the alert engine evaluates the institution's figures, "
        "the day's outflows and the lesson spike first, under the payout's locks, so a cause "
        "committed before the payout is always seen); `409 nothing_releasable` (the allowance is 0: no "
        "released money payable yet, or no room above the required balance "
        "`R = U + H + F`); `409 monthly_cap_reached` (this month's payouts have reached "
        "`monthly_payout_cap_floor_multiple` times F, or the amount is more than the cap "
        "leaves; failed and returned payouts do not count); `409 amount_exceeds_releasable` "
        "(more than the released money payable now); `409 min_balance_violation` (the amount "
        "would take the balance below R)."
    ),
)
async def create_payout(
    # No body at all means {}: every field is optional.
    body: Annotated[PayoutRequest, Body(default_factory=PayoutRequest)],
    caller: InstitutionCaller,
    db: Db,
) -> Payout:
    institution_id = caller.institution_id
    now = utcnow()
    # The alert engine first, committed on its own (without an Idempotency-Key): an alert it opens
    # is recorded even though the payout it suspends is refused and rolls back.
    await db.run(
        lambda session: service.evaluate_before_payout(
            session, institution_id, now, actor=caller.identity
        )
    )
    return await db.run(
        lambda session: service.create_payout(
            session, institution_id, body.amount_fen, "request", now, actor=caller.identity
        )
    )


@router.get(
    "",
    response_model=Page[PayoutOut],
    summary="Payouts",
    description=(
        "Oldest first, `limit` per page; pass `next_cursor` back as `cursor` for more. An "
        "institution sees its own payouts, a regulator its jurisdiction's, the operator all; "
        "`institution_id` and `status` narrow the list."
    ),
)
async def list_payouts(
    caller: InstitutionViewer,
    db: Db,
    page: PageParams,
    institution_id: UUID | None = None,
    status: PayoutStatus | None = None,
) -> Page[PayoutOut]:
    rows, next_cursor = await db.run(
        lambda session: repository.page(session, caller, institution_id, status, page)
    )
    return Page(items=[PayoutOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{payout_id}",
    response_model=PayoutOut,
    summary="A payout and its status",
    description=(
        "Status `pending`, `sent`, `settled`, `failed` or `returned`. Visible to its institution, "
        "the institution's regulator and the operator; 404 to anyone else."
    ),
)
async def get_payout(payout_id: UUID, caller: CurrentPrincipal, db: Db) -> Payout:
    return await db.run(lambda session: repository.visible_payout(session, caller, payout_id))
