"""The control API under /sim: what tests, the demo and benchmarks use to make the bank act (open
accounts, receive payments, settle, return, misbehave) and to see what it did."""

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from bank_simulator.bank_api import Sim
from bank_simulator.state import Behaviour

router = APIRouter(prefix="/sim", tags=["control"])
Deliver = Literal["now", "hold"]
Copies = Annotated[int, Field(ge=1, le=100)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountIn(_In):
    slug: str
    account_no: str = Field(min_length=1, max_length=40)
    name: str = ""
    balance_fen: int = Field(default=0, ge=0)


class PaymentIn(_In):
    slug: str
    account_no: str
    order_no: str
    amount_fen: int = Field(gt=0)
    payer_name: str = "张三"
    payer_account: str = "6222020200001234"
    memo: str = ""
    status: str | None = None  # the bank's success status when not given
    copies: Copies = 1
    deliver: Deliver = "now"
    amount_text: str | None = None  # sent instead of the amount, to send a malformed one


class BehaviourIn(_In):
    slug: str
    next: Behaviour
    count: int = Field(default=1, ge=1, le=1000)
    hang_seconds: float = Field(default=5, ge=0, le=600)


class SettleIn(_In):
    slug: str
    outcome: Literal["success", "fail"]
    instruction_ids: list[str] | None = None  # default: every processing instruction
    fail_reason: str = "AC01"
    copies: Copies = 1
    order: Literal["in_order", "reversed"] = "in_order"
    deliver: Deliver = "now"


class ReturnIn(_In):
    slug: str
    instruction_id: str
    reason: str = "AC04"
    copies: Copies = 1
    deliver: Deliver = "now"


class DeliverIn(_In):
    message_ids: list[str]
    copies: Copies = 1


@router.post("/accounts", status_code=201)
async def open_account(body: AccountIn, sim: Sim) -> dict[str, Any]:
    await sim.open_account(body.slug, body.account_no, body.name, body.balance_fen)
    return await sim.account(body.slug, body.account_no)


@router.get("/accounts/{slug}/{account_no}")
async def account(slug: str, account_no: str, sim: Sim) -> dict[str, Any]:
    return await sim.account(slug, account_no)


@router.post("/payments")
async def payment(body: PaymentIn, sim: Sim) -> dict[str, Any]:
    return await sim.pay(
        slug=body.slug,
        account_no=body.account_no,
        order_no=body.order_no,
        amount_fen=body.amount_fen,
        payer_name=body.payer_name,
        payer_account=body.payer_account,
        memo=body.memo,
        status=body.status,
        amount_text=body.amount_text,
        copies=body.copies,
        deliver_now=body.deliver == "now",
    )


@router.post("/behaviour")
async def behaviour(body: BehaviourIn, sim: Sim) -> dict[str, Any]:
    queued = await sim.behave(body.slug, body.next, body.count, body.hang_seconds)
    return {"slug": body.slug, "queued": queued}


@router.post("/settle")
async def settle(body: SettleIn, sim: Sim) -> dict[str, Any]:
    return await sim.settle(
        slug=body.slug,
        success=body.outcome == "success",
        instruction_ids=body.instruction_ids,
        fail_reason=body.fail_reason,
        copies=body.copies,
        reversed_order=body.order == "reversed",
        deliver_now=body.deliver == "now",
    )


@router.post("/returns")
async def returns(body: ReturnIn, sim: Sim) -> dict[str, Any]:
    return await sim.return_payment(
        slug=body.slug,
        instruction_id=body.instruction_id,
        reason=body.reason,
        copies=body.copies,
        deliver_now=body.deliver == "now",
    )


@router.get("/instructions/{slug}")
async def instructions(slug: str, sim: Sim) -> list[dict[str, Any]]:
    return await sim.instructions(slug)


@router.get("/messages")
async def messages(sim: Sim) -> list[dict[str, Any]]:
    return await sim.messages()


@router.post("/messages/deliver")
async def deliver(body: DeliverIn, sim: Sim) -> dict[str, Any]:
    return {"deliveries": await sim.deliver(body.message_ids, body.copies)}


@router.get("/statements/{slug}/{account_no}/{day}")
async def statement(slug: str, account_no: str, day: date, sim: Sim) -> Response:
    body, headers = await sim.statement(slug, account_no, day)
    media_type = headers.pop("Content-Type")
    return Response(body, headers=headers, media_type=media_type)


@router.post("/statements/{slug}/{account_no}/{day}/send")
async def send_statement(slug: str, account_no: str, day: date, sim: Sim) -> dict[str, Any]:
    return await sim.send_statement(slug, account_no, day)
