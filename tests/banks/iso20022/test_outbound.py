from dataclasses import replace
from datetime import UTC, datetime

import pytest
from lxml import etree

from app.banks.iso20022 import ADAPTER
from app.banks.iso20022.config import Iso20022Config
from app.banks.iso20022.signing import check_signature
from app.banks.protocol import (
    BankResponse,
    OutboundInstruction,
    QueryAnswer,
    QueryStatus,
    SubmitAnswer,
    SubmitStatus,
)
from app.models.instruction import InstructionKind

from .conftest import NOW

PAIN_001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"

PAYOUT = OutboundInstruction(
    id="PAY20240501X1",
    kind=InstructionKind.payout,
    amount_fen=1_280_005,
    escrow_account_no="6222020200112233445",
    payee_account_no="6217000010001234567",
    payee_name="北京乐学教育科技有限公司 & Co <分校>",
    memo="payout for April",
    created_at=datetime(2024, 5, 1, 1, 0, tzinfo=UTC),
)
REFUND = replace(
    PAYOUT,
    id="RFD20240501B2",
    kind=InstructionKind.refund,
    amount_fen=60_000,
    payee_account_no="6222600110022334455",
    payee_name="张三",
    order_no="ORD20240501A7",
    payment_reference="CNAPS20240501000123",
)


def leaves(body: bytes) -> dict[str, str]:
    """Every leaf of the document as `path -> text` (attributes as `path@name`), in the bank's
    namespace; any element outside it would show up with its own namespace."""
    root = etree.fromstring(body)
    result: dict[str, str] = {}
    for element in root.iter():
        if len(element) == 0:
            names = [etree.QName(e).localname for e in reversed(list(element.iterancestors()))]
            path = "/".join([*names, etree.QName(element).localname])
            assert etree.QName(element).namespace == PAIN_001
            assert path not in result, f"{path} appears twice"
            result[path] = element.text or ""
            for name, value in element.attrib.items():
                result[f"{path}@{name}"] = value
    return result


def expected(instruction: OutboundInstruction, amount: str, remittance: str) -> dict[str, str]:
    group = "Document/CstmrCdtTrfInitn/GrpHdr"
    payment = "Document/CstmrCdtTrfInitn/PmtInf"
    transfer = f"{payment}/CdtTrfTxInf"
    creditor_account = (
        {}
        if instruction.payee_account_no is None
        else {f"{transfer}/CdtrAcct/Id/Othr/Id": instruction.payee_account_no}
    )
    return {
        f"{group}/MsgId": instruction.id,
        f"{group}/CreDtTm": "2024-05-01T10:20:00+08:00",
        f"{group}/NbOfTxs": "1",
        f"{group}/CtrlSum": amount,
        f"{group}/InitgPty/Nm": "PrepaidGuard",
        f"{payment}/PmtInfId": instruction.id,
        f"{payment}/PmtMtd": "TRF",
        f"{payment}/ReqdExctnDt/Dt": "2024-05-01",
        f"{payment}/Dbtr/Nm": "PrepaidGuard",
        f"{payment}/DbtrAcct/Id/Othr/Id": "6222020200112233445",
        f"{payment}/DbtrAgt/FinInstnId/Othr/Id": "NOTPROVIDED",
        f"{transfer}/PmtId/EndToEndId": instruction.id,
        f"{transfer}/Amt/InstdAmt": amount,
        f"{transfer}/Amt/InstdAmt@Ccy": "CNY",
        f"{transfer}/Cdtr/Nm": instruction.payee_name,
        **creditor_account,
        f"{transfer}/RmtInf/Ustrd": remittance,
    }


def test_a_payout_is_a_pain001_with_exactly_the_specs_fields(config: Iso20022Config) -> None:
    request = ADAPTER.submit_request(config, PAYOUT, NOW)
    assert (request.method, request.path) == ("POST", "/payments")
    assert etree.QName(etree.fromstring(request.body)).namespace == PAIN_001
    assert leaves(request.body) == expected(PAYOUT, "12800.05", "PAYOUT")


def test_a_refund_goes_to_the_payer_quoting_its_order_and_the_payments_reference(
    config: Iso20022Config,
) -> None:
    request = ADAPTER.submit_request(config, REFUND, NOW)
    assert leaves(request.body) == expected(
        REFUND, "600.00", "REFUND ORD20240501A7 CNAPS20240501000123"
    )


def test_a_refund_of_a_payment_without_dbtracct_leaves_cdtracct_out(
    config: Iso20022Config,
) -> None:
    refund = replace(REFUND, payee_account_no=None)
    request = ADAPTER.submit_request(config, refund, NOW)
    body = leaves(request.body)
    assert body == expected(refund, "600.00", "REFUND ORD20240501A7 CNAPS20240501000123")
    assert not any("CdtrAcct" in path for path in body)


@pytest.mark.parametrize("missing", ["order_no", "payment_reference"])
def test_a_refund_without_its_order_or_payment_reference_is_not_sent(
    config: Iso20022Config, missing: str
) -> None:
    with pytest.raises(ValueError):
        ADAPTER.submit_request(config, replace(REFUND, **{missing: None}), NOW)


def test_elements_are_in_the_schemas_order(config: Iso20022Config) -> None:
    root = etree.fromstring(ADAPTER.submit_request(config, PAYOUT, NOW).body)
    names = [etree.QName(e).localname for e in root.iter()]
    assert names[:2] == ["Document", "CstmrCdtTrfInitn"]
    payment = root.find(f"{{{PAIN_001}}}CstmrCdtTrfInitn/{{{PAIN_001}}}PmtInf")
    assert [etree.QName(e).localname for e in payment] == [
        "PmtInfId",
        "PmtMtd",
        "ReqdExctnDt",
        "Dbtr",
        "DbtrAcct",
        "DbtrAgt",
        "CdtTrfTxInf",
    ]
    transfer = payment.find(f"{{{PAIN_001}}}CdtTrfTxInf")
    assert [etree.QName(e).localname for e in transfer] == [
        "PmtId",
        "Amt",
        "Cdtr",
        "CdtrAcct",
        "RmtInf",
    ]


def test_the_request_is_xml_signed_as_the_bank_checks_it(config: Iso20022Config) -> None:
    request = ADAPTER.submit_request(config, PAYOUT, NOW)
    assert request.headers["Content-Type"] == "application/xml"
    assert request.body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    header = request.headers["X-Signature"]
    assert header.startswith(f"t={int(NOW.timestamp())},v1=")
    bank_secret = config.outbound_secret.get_secret_value()  # the bank's inbound secret
    check_signature(header, request.body, [bank_secret], NOW)
    assert set(request.headers) == {"Content-Type", "X-Signature"}


def test_the_request_is_not_signed_with_an_inbound_secret(config: Iso20022Config) -> None:
    request = ADAPTER.submit_request(config, PAYOUT, NOW)
    inbound = [secret.get_secret_value() for secret in config.inbound_secrets]
    with pytest.raises(Exception, match="no v1 matches"):
        check_signature(request.headers["X-Signature"], request.body, inbound, NOW)


def response(status_code: int, body: bytes = b"") -> BankResponse:
    return BankResponse(status_code=status_code, headers={}, body=body, received_at=NOW)


@pytest.mark.parametrize(
    ("status_code", "answer"),
    [
        (202, SubmitStatus.accepted),
        (409, SubmitStatus.duplicate),
        (400, SubmitStatus.refused),
        (401, SubmitStatus.refused),
        (403, SubmitStatus.refused),
        (404, SubmitStatus.refused),
        (422, SubmitStatus.refused),
        (408, SubmitStatus.unclear),  # the bank did not take it yet: resending is safe
        (429, SubmitStatus.unclear),
        (500, SubmitStatus.unclear),
        (502, SubmitStatus.unclear),
        (503, SubmitStatus.unclear),
        (504, SubmitStatus.unclear),
        (200, SubmitStatus.unclear),  # not the spec's answer: never taken as accepted
        (201, SubmitStatus.unclear),
        (204, SubmitStatus.unclear),
        (302, SubmitStatus.unclear),
    ],
)
def test_submit_answers_by_status_code(
    config: Iso20022Config, status_code: int, answer: SubmitStatus
) -> None:
    read = ADAPTER.read_submit(config, response(status_code, b"not json <at all>"))
    assert read.status is answer
    assert read.code == str(status_code)


def test_a_refusal_keeps_what_the_bank_said(config: Iso20022Config) -> None:
    answer = ADAPTER.read_submit(config, response(422, "收款账号格式错误".encode()))
    assert answer == SubmitAnswer(SubmitStatus.refused, code="422", detail="收款账号格式错误")


def test_an_accepted_submission_needs_no_body_or_signature(config: Iso20022Config) -> None:
    """The spec signs messages, not HTTP answers: a bare 202 is the bank's acceptance."""
    assert ADAPTER.read_submit(config, response(202)) == SubmitAnswer(
        SubmitStatus.accepted, code="202"
    )


def test_there_is_no_query_a_resend_is_the_query(config: Iso20022Config) -> None:
    assert ADAPTER.query_request(config, PAYOUT, NOW) is None
    for status_code in (200, 202, 404, 409, 502):
        answer = ADAPTER.read_query(config, PAYOUT, response(status_code, b"{}"))
        assert answer.status is QueryStatus.unclear
        assert isinstance(answer, QueryAnswer)
