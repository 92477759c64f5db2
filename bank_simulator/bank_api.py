"""The bank-facing endpoints: where the service sends its instructions and queries, one route set
per bank spec, under `/banks/{slug}` (the bank's base_url)."""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from app.banks.protocol import VerificationFailed
from app.kit.clock import utcnow
from bank_simulator.bank import Outcome, Simulator, SubmitResult
from bank_simulator.messages import gmbank, iso20022, ums
from bank_simulator.messages.base import Unreadable
from bank_simulator.state import Behaviour

router = APIRouter(tags=["bank"])


def simulator(request: Request) -> Simulator:
    sim: Simulator = request.app.state.simulator
    return sim


Sim = Annotated[Simulator, Depends(simulator)]


def _bad_gateway() -> Response:
    # What a gateway in front of the bank answers: unsigned, not the bank's format.
    return Response(b"Bad Gateway", status_code=502, media_type="text/plain")


async def _as_asked(result: SubmitResult, answer: Response) -> Response:
    """The bank's answer, or what the control API asked to happen to it instead."""
    behaviour = result.behaviour.behaviour if result.behaviour else Behaviour.accept
    if behaviour is Behaviour.execute_then_502:
        return _bad_gateway()
    if behaviour is Behaviour.execute_then_timeout and result.behaviour is not None:
        await asyncio.sleep(result.behaviour.hang_seconds)
    return answer


# --- ums -----------------------------------------------------------------------------------------

_UMS_ANSWERS = {
    Outcome.accepted: (ums.ACCEPTED, "success"),
    Outcome.duplicate: (ums.DUPLICATE, "duplicate srcReqId"),
    Outcome.insufficient: (ums.INSUFFICIENT, "insufficient balance"),
    Outcome.unknown_account: (ums.REFUSED, "no such account"),
    Outcome.unknown_payment: (ums.REFUSED, "no such original payment"),
    Outcome.refused: (ums.REFUSED, "refused"),
}


@router.post("/banks/{slug}/channel/Business/UnifyMulti/{trans_code}")
async def ums_request(slug: str, trans_code: str, request: Request, sim: Sim) -> Response:
    bank = sim.bank(slug, "ums")
    body = await request.body()

    def answer(code: str, message: str, **more: Any) -> Response:
        fields = {"respCode": code, "respMsg": message, **more}
        return Response(ums.response(bank, fields), media_type="application/json")

    try:
        payload = ums.read_request(body)
    except Unreadable as error:
        return answer(ums.REFUSED, str(error))
    if not ums.verify_request(bank, payload):
        return answer(ums.BAD_SIGNATURE, "signature verification failed")
    echo = {"srcReqId": payload.get("srcReqId", "")}
    if trans_code == ums.QUERY:
        wanted = payload.get("origSrcReqId")
        instruction = sim.instruction(slug, wanted) if isinstance(wanted, str) else None
        if instruction is None:
            return answer(ums.NOT_FOUND, "no such request", **echo)
        order = {
            "orderNo": instruction.id,
            "status": ums.QUERY_STATUS[instruction.state],
            "orderAmt": str(instruction.amount_fen),
        }
        return answer(ums.ACCEPTED, "success", orderSet=[order], **echo)
    if trans_code not in (ums.PAYOUT, ums.REFUND):
        return answer(ums.REFUSED, f"unknown transCode {trans_code}", **echo)
    try:
        submission = ums.read_instruction(trans_code, payload)
    except Unreadable as error:
        return answer(ums.REFUSED, str(error), **echo)
    result = await sim.submit(slug, submission, utcnow())
    if result.outcome is Outcome.dropped:
        return _bad_gateway()
    code, message = _UMS_ANSWERS[result.outcome]
    return await _as_asked(result, answer(code, message, **echo))


# --- iso20022 ------------------------------------------------------------------------------------

_ISO_ANSWERS = {
    Outcome.accepted: (202, ""),
    Outcome.duplicate: (409, "duplicate EndToEndId: the earlier instruction stands"),
    Outcome.insufficient: (422, "insufficient balance"),
    Outcome.unknown_account: (422, "no such debtor account"),
    Outcome.unknown_payment: (422, "no payment with this AcctSvcrRef to refund"),
    Outcome.refused: (403, "refused"),
}


@router.post("/banks/{slug}/payments")
async def iso_payment(slug: str, request: Request, sim: Sim) -> Response:
    bank = sim.bank(slug, "iso20022")
    dialect = sim.dialect(bank)
    body = await request.body()

    def answer(status: int, text: str) -> Response:
        content = text.encode()
        headers = dialect.sign(bank, content, utcnow())
        return Response(content, status_code=status, headers=headers, media_type="text/plain")

    try:
        iso20022.verify_request(bank, request.headers.get("x-signature"), body, utcnow())
    except VerificationFailed as error:
        return answer(401, error.detail)
    try:
        submission = iso20022.read_payment_initiation(body)
    except Unreadable as error:
        return answer(422, str(error))
    result = await sim.submit(slug, submission, utcnow())
    if result.outcome is Outcome.dropped:
        return _bad_gateway()
    return await _as_asked(result, answer(*_ISO_ANSWERS[result.outcome]))


# --- gmbank --------------------------------------------------------------------------------------

_GM_ANSWERS = {
    Outcome.accepted: (gmbank.OK, "accepted"),
    Outcome.duplicate: (gmbank.DUPLICATE, "duplicate instrId"),
    Outcome.insufficient: (gmbank.INSUFFICIENT, "insufficient balance"),
    Outcome.unknown_account: (gmbank.NO_SUCH_ACCOUNT, "no such account"),
    Outcome.unknown_payment: (gmbank.REFUSED, "no payment with this origSerialNo"),
    Outcome.refused: (gmbank.REFUSED, "refused"),
}


def _gm_answer(sim: Simulator, slug: str, fields: dict[str, Any], status: int = 200) -> Response:
    bank = sim.bank(slug)
    content = gmbank.answer(fields)
    headers = sim.dialect(bank).sign(bank, content, utcnow())
    return Response(content, status_code=status, headers=headers, media_type=gmbank.JSON)


async def _gm_verified(sim: Simulator, slug: str, request: Request, body: bytes) -> Response | None:
    """None when the request is signed by the service and fresh; else the 401 to answer."""
    bank = sim.bank(slug, "gmbank")
    now = utcnow()
    try:
        nonce = gmbank.verify_request(bank, request.headers, body, now)
    except VerificationFailed as error:
        return _gm_answer(sim, slug, {"code": gmbank.BAD_SIGNATURE, "msg": error.detail}, 401)
    if await sim.seen_nonce(slug, nonce, now):
        return _gm_answer(sim, slug, {"code": gmbank.BAD_SIGNATURE, "msg": "nonce replayed"}, 401)
    return None


@router.post("/banks/{slug}/api/v1/transfer")
async def gm_transfer(slug: str, request: Request, sim: Sim) -> Response:
    body = await request.body()
    refused = await _gm_verified(sim, slug, request, body)
    if refused is not None:
        return refused
    try:
        submission = gmbank.read_transfer(body)
    except Unreadable as error:
        return _gm_answer(sim, slug, {"code": gmbank.MALFORMED, "msg": str(error)}, 400)
    result = await sim.submit(slug, submission, utcnow())
    if result.outcome is Outcome.dropped:
        return _bad_gateway()
    code, message = _GM_ANSWERS[result.outcome]
    fields: dict[str, Any] = {"code": code, "msg": message}
    if result.instruction is not None and result.outcome in (Outcome.accepted, Outcome.duplicate):
        fields["acceptNo"] = result.instruction.accept_no
    return await _as_asked(result, _gm_answer(sim, slug, fields))


@router.get("/banks/{slug}/api/v1/transfer/{instruction_id}")
async def gm_query(slug: str, instruction_id: str, request: Request, sim: Sim) -> Response:
    body = await request.body()  # empty, and signed as such
    refused = await _gm_verified(sim, slug, request, body)
    if refused is not None:
        return refused
    instruction = sim.instruction(slug, instruction_id)
    if instruction is None:
        return _gm_answer(sim, slug, {"code": gmbank.NOT_FOUND, "msg": "not found"}, 404)
    status = gmbank.QUERY_STATUS[instruction.state]
    fields = {"code": gmbank.OK, "msg": "OK", "instrId": instruction.id, "status": status}
    return _gm_answer(sim, slug, fields)
