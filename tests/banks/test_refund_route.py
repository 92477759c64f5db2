"""A refund goes back by the original route (DOMAIN.md rule 7): to whoever paid, as the bank's
notification of the payment named them, quoting that payment as each bank's spec asks. Checked on
the instruction as the bank (the simulator, over real HTTP) received it."""

from typing import Any

import pytest

from tests.banks.simulated import Simulated, simulated_bank

PAYER = {"payer_name": "王小明", "payer_account": "6222020200009876"}


async def refund_as_the_bank_got_it(sim: Simulated, payer: dict[str, str]) -> tuple[dict, dict]:
    """Enroll, pay at the bank as `payer`, refund, dispatch: the payment the bank notified and the
    refund instruction it received."""
    enrollment = await sim.enroll(3)
    paid = await sim.pay(enrollment["order_no"], enrollment["amount_fen"], **payer)
    assert paid["deliveries"][0]["status_code"] == 200, paid
    await sim.refund_in_full(enrollment)
    [instruction] = [i for i in await sim.bank_instructions() if i["kind"] == "refund"]
    assert instruction["status"] == "processing", instruction  # accepted by the bank
    assert instruction["amount_fen"] == enrollment["amount_fen"]
    return {**paid, "order_no": enrollment["order_no"]}, instruction


@pytest.mark.parametrize("adapter", ["ums", "iso20022", "gmbank"])
async def test_a_refund_goes_back_to_the_payer_quoting_the_payment(engine, database_url, adapter):
    async with simulated_bank(engine, database_url, adapter) as sim:
        payment, instruction = await refund_as_the_bank_got_it(sim, PAYER)

    expected: dict[str, Any] = {"original_reference": payment["bank_reference"]}
    if adapter == "ums":
        # 202011 quotes the payment's targetOrderId and seqId; it names no payee.
        expected["origin"] = {"origTargetOrderId": payment["channel_order_id"]}
    elif adapter == "iso20022":
        # Cdtr and CdtrAcct from RltdPties/Dbtr and DbtrAcct; RmtInf "REFUND <order> <ref>".
        expected["payee"] = {"account_no": "6222020200009876", "name": "王小明"}
        expected["memo"] = f"REFUND {payment['order_no']} {payment['bank_reference']}"
    else:
        # toAcct and toName from payerAcct and payerName, as the bank showed them (masked).
        expected["payee"] = {"account_no": "6222********9876", "name": "王**"}
    assert {key: instruction[key] for key in expected} == expected


async def test_an_iso20022_refund_of_a_payment_without_dbtracct_is_routed_by_its_reference(
    engine, database_url
):
    async with simulated_bank(engine, database_url, "iso20022") as sim:
        payment, instruction = await refund_as_the_bank_got_it(
            sim, {"payer_name": "", "payer_account": ""}
        )

    # No CdtrAcct: the bank found the payer from the AcctSvcrRef in RmtInf.
    assert instruction["payee"]["account_no"] == ""
    assert instruction["original_reference"] == payment["bank_reference"]
    assert instruction["memo"] == f"REFUND {payment['order_no']} {payment['bank_reference']}"
    assert (
        instruction["payee"]["name"] == "Li parent"
    )  # the enrollment's payer: the bank named none
