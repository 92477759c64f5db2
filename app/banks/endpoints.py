from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.context import Actor, acting_as
from app.auth.dependencies import Admin
from app.banks import config as bank_config
from app.banks.inbox import page_of_messages, receive, retry_message
from app.banks.protocol import InboundRequest
from app.banks.schemas import (
    SLUG_PATTERN,
    BankMessageOut,
    BankMessagePage,
    BankOut,
    BankPut,
)
from app.db.unit import Db, get_database
from app.errors import documented_problem
from app.kit.clock import utcnow
from app.kit.pagination import PageParams
from app.models import Bank, BankMessage
from app.models.bank_message import MessageStatus

router = APIRouter(tags=["banks"])

Slug = Annotated[str, Path(pattern=SLUG_PATTERN, description="The bank's slug, e.g. `ums`.")]

BANK_BODY = {
    "requestBody": {
        "required": True,
        "description": "The bank's message, exactly as its interface specifies.",
        "content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "string"}},
            "application/xml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


def _out(bank: Bank, configured: list[str]) -> BankOut:
    return BankOut(
        slug=bank.slug,
        adapter=bank.adapter,  # type: ignore[arg-type]  # validated when it was stored
        base_url=bank.base_url,
        configured=configured,
        statements=bank_config.statement_settings(bank),
        updated_at=bank.updated_at,
    )


@router.put(
    "/v1/banks/{slug}",
    response_model=BankOut,
    summary="Configure a bank",
    description=(
        "Create or replace a bank's adapter, base URL and keys (replacing is how keys rotate). "
        "The config is validated by the adapter (`422 invalid_bank_config` says which field), "
        "stored sealed under SECRET_KEY, and never returned: the answer lists only which fields "
        "are set. Operator only."
    ),
)
async def put_bank(slug: Slug, body: BankPut, request: Request, caller: Admin, db: Db) -> BankOut:
    secret = request.app.state.settings.secret_key.get_secret_value()

    async def work(session: AsyncSession) -> tuple[Bank, Any]:
        bank, config = await bank_config.configure_bank(
            session, secret, slug, body.adapter, body.base_url, body.config, body.statements
        )
        # Which fields were set, never their values: the secrets stay sealed.
        await audit.record(
            session,
            "bank.configure",
            actor=caller,
            object_type="bank",
            object_id=slug,
            details={
                "adapter": body.adapter,
                "base_url": body.base_url,
                "configured": bank_config.configured_fields(config),
            },
        )
        return bank, config

    bank, config = await db.run(work)
    bank_config.forget_bank(db, slug)
    return _out(bank, bank_config.configured_fields(config))


@router.get(
    "/v1/banks/{slug}",
    response_model=BankOut,
    summary="A bank's configuration (without secrets)",
    description="`404 bank_not_found` when no bank has this slug. Operator only.",
)
async def get_bank(slug: Slug, request: Request, _: Admin, db: Db) -> BankOut:
    secret = request.app.state.settings.secret_key.get_secret_value()
    setup = await db.run(lambda session: bank_config.load_bank(session, slug, secret))
    bank = Bank(
        slug=setup.slug,
        adapter=setup.adapter.name,
        base_url=setup.base_url,
        updated_at=setup.updated_at,
    )
    return _out(bank, bank_config.configured_fields(setup.config))


async def inbound_request(request: Request) -> tuple[InboundRequest, str | None]:
    """A bank's request as its adapter reads it, and the address it came from."""
    inbound = InboundRequest(
        headers={name.lower(): value for name, value in request.headers.items()},
        body=await request.body(),
        received_at=utcnow(),
    )
    return inbound, request.client.host if request.client else None


@router.post(
    "/v1/banks/{slug}/notify",
    summary="Bank notifications and results",
    description=(
        "Called by the bank, authenticated by the bank's own signature on the raw body (see the "
        "bank's interface). Answered with the bank's own replies: its success reply once the "
        "message is durably recorded (a resend too), its error reply with 401 for a bad, missing, "
        "expired or replayed signature (recorded as a security event, nothing acted on), and with "
        "400 for a malformed message (an inexact or zero amount; for ums a field holding `&` or "
        "`=`) and for a message about an escrow account or an instruction of another bank "
        "(stored `refused`, a security event and a red alert, nothing applied; a resend gets the "
        "same answer). Bodies above 1 MiB: 413. `404 bank_not_found` for an unknown slug."
    ),
    openapi_extra=BANK_BODY,
    response_class=Response,
    responses={200: {"description": "The bank's success reply, in its format."}},
)
async def notify(slug: Slug, request: Request) -> Response:
    # The database without a `Db` dependency: a level less for FastAPI to resolve on the path
    # banks call by the thousand, the same Database (get_database is what Db resolves to).
    db = await get_database(request)
    inbound, remote = await inbound_request(request)
    with acting_as(Actor("bank", slug)):  # what the message moves, the bank moved
        bank, received = await receive(db, slug, inbound, remote, request.app.state.inbox)
    reply = bank.adapter.reply(received.reply)
    return Response(content=reply.body, status_code=reply.status_code, media_type=reply.media_type)


@router.get(
    "/v1/banks/{slug}/messages",
    response_model=BankMessagePage,
    summary="A bank's messages, as the inbox stored them",
    description=(
        "Every message the bank sent, oldest first, with its verification and what became of it; "
        "`status=failed` lists those waiting for a retry, `rejected` those that failed their "
        "signature, `refused` those a bank sent about another bank's account or instruction. "
        "Bodies are not returned. Operator only."
    ),
)
async def list_messages(
    slug: Slug, _: Admin, db: Db, page: PageParams, status: MessageStatus | None = None
) -> BankMessagePage:
    rows, next_cursor = await db.run(lambda session: page_of_messages(session, slug, status, page))
    return BankMessagePage(items=[BankMessageOut.of(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/v1/banks/{slug}/messages/{message_id}/retry",
    response_model=BankMessageOut,
    summary="Apply a failed message again now",
    description=(
        "For a message whose application failed (`status` `failed`), once its cause is fixed: "
        "applies it at once, as `process_inbox` would, even after that job gave up on it. "
        "Applying is idempotent. The message comes back `processed`, or still `failed` with the "
        "new reason in `detail`. `404 bank_message_not_found`; `409 bank_message_not_failed` for "
        "any other status. Operator only."
    ),
    responses={
        404: documented_problem("`bank_message_not_found`"),
        409: documented_problem("`bank_message_not_failed`"),
    },
)
async def retry(slug: Slug, message_id: UUID, caller: Admin, db: Db) -> BankMessageOut:
    async def recorded(session: AsyncSession, message: BankMessage) -> None:
        await audit.record(
            session,
            "bank_message.retry",
            actor=caller,
            object_type="bank_message",
            object_id=message.id,
            details={"bank_slug": slug, "status": str(message.status)},
        )

    with acting_as(Actor("bank", slug)):  # the money it moves is the bank's message's
        message = await retry_message(db, slug, message_id, recorded)
    return BankMessageOut.of(message)
