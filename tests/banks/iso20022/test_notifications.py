from datetime import UTC, datetime, timedelta

import pytest

from app.banks.iso20022 import ADAPTER
from app.banks.iso20022.config import Iso20022Config
from app.banks.protocol import (
    DebitBooked,
    InboundRequest,
    InstructionResult,
    MalformedMessage,
    Notice,
    Notification,
    PaymentReceived,
    ReplyKind,
    ResultStatus,
    SignatureProblem,
    VerificationFailed,
    Verified,
)
from app.kit.clock import SHANGHAI

from .conftest import GOLDEN_FILES, NOW, golden, parse, signed

ACCOUNT = "6222020200112233445"
OTHER_ACCOUNT = "6222020200998877665"


def test_two_booked_credits_are_two_payments() -> None:
    assert parse(golden("camt054_two_payments.xml")) == Notification(
        message_id="CAMT054202405010001",
        events=(
            PaymentReceived(
                account_no=ACCOUNT,
                order_no="ORD20240501A7",
                amount_fen=1_280_000,
                bank_reference="CNAPS20240501000123",
                paid_at=datetime(2024, 5, 1, 2, 12, 31, tzinfo=UTC),
                channel_order_id=None,
                payer_name="张三",  # RltdPties/Dbtr/Pty/Nm; no DbtrAcct
            ),
            PaymentReceived(
                account_no=ACCOUNT,
                order_no=None,  # no TxDtls: money that quotes no order
                amount_fen=350_050,
                bank_reference="CNAPS20240501000124",
                paid_at=datetime(2024, 5, 1, 10, 14, 2, tzinfo=SHANGHAI),
                channel_order_id=None,
            ),
        ),
    )


def test_a_booking_time_without_offset_is_beijing_time() -> None:
    payment = parse(golden("camt054_two_payments.xml")).events[1]
    assert isinstance(payment, PaymentReceived)
    assert payment.paid_at == datetime(2024, 5, 1, 2, 14, 2, tzinfo=UTC)


def test_pending_and_info_entries_are_notices_and_a_booked_debit_is_money_out() -> None:
    notification = parse(golden("camt054_pending_and_debit.xml"))
    assert notification.message_id == "CAMT054202405010002"
    assert [type(event) for event in notification.events] == [Notice, DebitBooked, Notice]
    assert [event.account_no for event in notification.events] == [
        ACCOUNT,
        OTHER_ACCOUNT,
        OTHER_ACCOUNT,
    ]
    assert [event.description for event in notification.events if isinstance(event, Notice)] == [
        "CRDT entry CNAPS20240501000200 of 600.00 CNY with status PDNG: moves no money",
        "CRDT entry CNAPS20240501000202 of 0.01 CNY with status INFO: moves no money",
    ]
    debit = notification.events[1]
    assert isinstance(debit, DebitBooked)
    assert (debit.amount_fen, debit.bank_reference, debit.instruction_id) == (
        200_000,
        "CNAPS20240501000201",
        "PAY20240501X1",
    )


def test_a_returned_payout_is_an_instruction_result_returned() -> None:
    assert parse(golden("camt054_returned_payout.xml")) == Notification(
        message_id="CAMT054202405030007",
        events=(
            InstructionResult(
                instruction_id="PAY20240501X1",
                status=ResultStatus.returned,
                account_no=ACCOUNT,
                amount_fen=200_000,
                reason="AC04",
                bank_reference="CNAPS20240503000777",
            ),
        ),
    )


def test_pain002_statuses_are_settled_failed_and_pending() -> None:
    assert parse(golden("pain002_statuses.xml")) == Notification(
        message_id="PAIN002202405020009",
        events=(
            InstructionResult(instruction_id="PAY20240502A1", status=ResultStatus.settled),
            InstructionResult(
                instruction_id="RFD20240502B2", status=ResultStatus.failed, reason="AC01"
            ),
            InstructionResult(instruction_id="PAY20240502C3", status=ResultStatus.pending),
        ),
    )


# --- Signatures on every golden message ----------------------------------------------------------


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_a_golden_message_signed_by_the_bank_verifies(
    name: str, config: Iso20022Config, bank_secret: str
) -> None:
    assert ADAPTER.verify(config, signed(golden(name), bank_secret)) == Verified()


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_changing_any_one_byte_of_the_body_fails(
    name: str, config: Iso20022Config, bank_secret: str
) -> None:
    request = signed(golden(name), bank_secret)
    for position in range(len(request.body)):
        body = bytearray(request.body)
        body[position] ^= 0x01
        tampered = InboundRequest(request.headers, bytes(body), request.received_at)
        with pytest.raises(VerificationFailed) as failure:
            ADAPTER.verify(config, tampered)
        assert failure.value.problem is SignatureProblem.bad, position


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_changing_any_one_byte_of_the_signature_fails(
    name: str, config: Iso20022Config, bank_secret: str
) -> None:
    request = signed(golden(name), bank_secret)
    header = request.headers["x-signature"]
    for position in range(len(header)):
        character = "1" if header[position] != "1" else "2"
        tampered = header[:position] + character + header[position + 1 :]
        with pytest.raises(VerificationFailed):
            ADAPTER.verify(config, InboundRequest({"x-signature": tampered}, request.body, NOW))


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_a_golden_message_without_signature_fails_as_missing(
    name: str, config: Iso20022Config
) -> None:
    with pytest.raises(VerificationFailed) as failure:
        ADAPTER.verify(config, InboundRequest({}, golden(name), NOW))
    assert failure.value.problem is SignatureProblem.missing


def test_a_message_signed_too_long_ago_is_expired(config: Iso20022Config, bank_secret: str) -> None:
    request = signed(golden("pain002_statuses.xml"), bank_secret, at=NOW - timedelta(seconds=301))
    late = InboundRequest(request.headers, request.body, received_at=NOW)
    with pytest.raises(VerificationFailed) as failure:
        ADAPTER.verify(config, late)
    assert failure.value.problem is SignatureProblem.expired


# --- Amounts -------------------------------------------------------------------------------------

AMOUNT = '<Amt Ccy="CNY">12800.00</Amt>\n        <CdtDbtInd>'


def with_amount(amount: str) -> bytes:
    text = golden("camt054_two_payments.xml").decode()
    assert AMOUNT in text
    return text.replace(AMOUNT, f"{amount}\n        <CdtDbtInd>", 1).encode()


@pytest.mark.parametrize(
    ("amount", "fen"),
    [("1", 100), ("0.5", 50), ("12800.1", 1_280_010), ("99999999.99", 9_999_999_999)],
)
def test_exact_amounts_are_read_as_fen(amount: str, fen: int) -> None:
    payment = parse(with_amount(f'<Amt Ccy="CNY">{amount}</Amt>')).events[0]
    assert isinstance(payment, PaymentReceived)
    assert payment.amount_fen == fen


@pytest.mark.parametrize(
    "amount",
    [
        '<Amt Ccy="CNY">12800.001</Amt>',
        '<Amt Ccy="CNY">-12800.00</Amt>',
        '<Amt Ccy="CNY">+12800.00</Amt>',
        '<Amt Ccy="CNY">1.28E4</Amt>',
        '<Amt Ccy="CNY"></Amt>',
        '<Amt Ccy="CNY"/>',
        '<Amt Ccy="CNY">12,800.00</Amt>',
        '<Amt Ccy="CNY">.50</Amt>',
        '<Amt Ccy="CNY">12800.</Amt>',
        '<Amt Ccy="CNY">NaN</Amt>',
        '<Amt Ccy="CNY">Infinity</Amt>',
        '<Amt Ccy="CNY">\uff11\uff12\uff18\uff10\uff10</Amt>',  # full-width digits
        '<Amt Ccy="CNY"> 12800.00</Amt>',
        '<Amt Ccy="USD">12800.00</Amt>',
        "<Amt>12800.00</Amt>",
        "",
    ],
)
def test_an_amount_that_is_not_exact_fen_in_cny_is_malformed(amount: str) -> None:
    with pytest.raises(MalformedMessage):
        parse(with_amount(amount))


def test_a_bad_amount_on_an_entry_that_moves_no_money_is_malformed_too() -> None:
    body = golden("camt054_pending_and_debit.xml").replace(b">0.01<", b">0.001<")
    with pytest.raises(MalformedMessage):
        parse(body)


# --- Statuses that never become money ------------------------------------------------------------


def credit_with(replace: tuple[bytes, bytes]) -> Notification:
    body = golden("camt054_returned_payout.xml").replace(b"<RtrInf>", b"<Ignored>")
    body = body.replace(b"</RtrInf>", b"</Ignored>")
    assert replace[0] in body
    return parse(body.replace(*replace))


@pytest.mark.parametrize(
    "status",
    [
        b"<Cd>PDNG</Cd>",
        b"<Cd>INFO</Cd>",
        b"<Cd>BOOKED</Cd>",
        b"<Cd>book</Cd>",
        b"<Prtry>BOOK</Prtry>",
    ],
)
def test_a_credit_not_booked_is_a_notice(status: bytes) -> None:
    notification = credit_with((b"<Cd>BOOK</Cd>", status))
    assert [type(event) for event in notification.events] == [Notice]


def test_a_notice_names_a_proprietary_status() -> None:
    notification = credit_with((b"<Cd>BOOK</Cd>", b"<Prtry>BOOK</Prtry>"))
    assert notification.events == (
        Notice(
            "6222020200112233445",
            "CRDT entry CNAPS20240503000777 of 2000.00 CNY with status proprietary BOOK: "
            "moves no money",
        ),
    )


@pytest.mark.parametrize("direction", [b"XXXX", b""])
def test_a_booked_entry_neither_credit_nor_debit_is_a_notice(direction: bytes) -> None:
    notification = credit_with(
        (b"<CdtDbtInd>CRDT</CdtDbtInd>", b"<CdtDbtInd>" + direction + b"</CdtDbtInd>")
    )
    assert [type(event) for event in notification.events] == [Notice]


def test_a_booked_debit_is_money_out_quoting_its_end_to_end_id() -> None:
    notification = credit_with((b"<CdtDbtInd>CRDT</CdtDbtInd>", b"<CdtDbtInd>DBIT</CdtDbtInd>"))
    [debit] = notification.events
    assert isinstance(debit, DebitBooked) and debit.instruction_id is not None


def test_a_bare_status_of_earlier_versions_is_read_too() -> None:
    notification = credit_with(
        (b"<Sts>\n          <Cd>BOOK</Cd>\n        </Sts>", b"<Sts>BOOK</Sts>")
    )
    assert [type(event) for event in notification.events] == [PaymentReceived]
    notice = credit_with((b"<Sts>\n          <Cd>BOOK</Cd>\n        </Sts>", b"<Sts>PDNG</Sts>"))
    assert [type(event) for event in notice.events] == [Notice]


@pytest.mark.parametrize(
    "status", [b"ACCC", b"ACSP", b"ACTC", b"ACWC", b"PART", b"acsc", b"SETTLED", b""]
)
def test_a_transaction_status_other_than_acsc_or_rjct_is_pending(status: bytes) -> None:
    body = golden("pain002_statuses.xml").replace(
        b"<TxSts>ACSC</TxSts>", b"<TxSts>" + status + b"</TxSts>"
    )
    event = parse(body).events[0]
    assert event == InstructionResult(instruction_id="PAY20240502A1", status=ResultStatus.pending)


def test_a_transaction_without_status_is_pending() -> None:
    body = golden("pain002_statuses.xml").replace(b"<TxSts>ACSC</TxSts>", b"")
    assert parse(body).events[0] == InstructionResult("PAY20240502A1", ResultStatus.pending)


def test_a_rejection_with_a_proprietary_reason_keeps_it() -> None:
    body = golden("pain002_statuses.xml").replace(b"<Cd>AC01</Cd>", b"<Prtry>BANK-17</Prtry>")
    assert parse(body).events[1] == InstructionResult(
        "RFD20240502B2", ResultStatus.failed, reason="BANK-17"
    )


def test_a_report_on_the_group_alone_is_a_notice() -> None:
    body = b"""<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
    <GrpHdr><MsgId>RPT1</MsgId></GrpHdr>
    <OrgnlGrpInfAndSts><OrgnlMsgId>PAY1</OrgnlMsgId><GrpSts>RJCT</GrpSts></OrgnlGrpInfAndSts>
    </CstmrPmtStsRpt></Document>"""
    assert parse(body) == Notification(
        "RPT1",
        (
            Notice(
                None,
                "status report RPT1 on message PAY1 with group status RJCT and no transaction status",
            ),
        ),
    )


# --- References ----------------------------------------------------------------------------------


def test_notprovided_is_no_order_number() -> None:
    body = golden("camt054_two_payments.xml").replace(b"ORD20240501A7", b"NOTPROVIDED")
    payment = parse(body).events[0]
    assert isinstance(payment, PaymentReceived)
    assert payment.order_no is None


@pytest.mark.parametrize(
    ("name", "remove"),
    [
        ("camt054_two_payments.xml", b"<MsgId>CAMT054202405010001</MsgId>"),
        ("camt054_two_payments.xml", b"<AcctSvcrRef>CNAPS20240501000123</AcctSvcrRef>"),
        ("camt054_two_payments.xml", b"<Id>6222020200112233445</Id>"),
        ("camt054_two_payments.xml", b"<DtTm>2024-05-01T10:12:31+08:00</DtTm>"),
        ("camt054_returned_payout.xml", b"<EndToEndId>PAY20240501X1</EndToEndId>"),
        ("camt054_returned_payout.xml", b"<AcctSvcrRef>CNAPS20240503000777</AcctSvcrRef>"),
        ("pain002_statuses.xml", b"<MsgId>PAIN002202405020009</MsgId>"),
        ("pain002_statuses.xml", b"<OrgnlEndToEndId>RFD20240502B2</OrgnlEndToEndId>"),
    ],
)
def test_a_missing_required_element_is_malformed(name: str, remove: bytes) -> None:
    body = golden(name)
    assert remove in body
    with pytest.raises(MalformedMessage):
        parse(body.replace(remove, b""))


@pytest.mark.parametrize(
    "moment", [b"2024-05-01", b"2024-13-01T10:12:31", b"01/05/2024 10:12", b"2024-05-01T10:12:31+8"]
)
def test_a_booking_time_that_is_not_an_iso_datetime_is_malformed(moment: bytes) -> None:
    body = golden("camt054_two_payments.xml").replace(b"2024-05-01T10:12:31+08:00", moment)
    with pytest.raises(MalformedMessage):
        parse(body)


def test_a_batched_credit_with_several_transactions_is_malformed() -> None:
    """One amount for several transfers cannot be attributed to one order."""
    text = golden("camt054_two_payments.xml")
    start, end = text.index(b"<TxDtls>"), text.index(b"</TxDtls>") + len(b"</TxDtls>")
    body = text[:end] + text[start:end] + text[end:]
    with pytest.raises(MalformedMessage):
        parse(body)


# --- XML safety and shape ------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><MsgId>&lol9;</MsgId></GrpHdr></CstmrPmtStsRpt></Document>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><MsgId>&xxe;</MsgId></GrpHdr></CstmrPmtStsRpt></Document>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Document SYSTEM "http://attacker.example/evil.dtd">
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><MsgId>M1</MsgId></GrpHdr></CstmrPmtStsRpt></Document>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
def test_documents_with_dtds_or_entities_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b'{"MsgId": "1"}',
        b"<Document><BkToCstmrDbtCdtNtfctn/></Document>",  # no namespace
        # a statement is not a notification
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt/></Document>',
        # an older camt.054
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"><BkToCstmrDbtCdtNtfctn/></Document>',
        b'<Other xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"/>',
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><CstmrPmtStsRpt/></Document>',
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><BkToCstmrDbtCdtNtfctn/></Document>',
        golden("camt054_two_payments.xml")[:-40],  # cut short
    ],
)
def test_anything_but_a_camt054_or_pain002_document_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse(body)


def test_elements_we_do_not_know_are_ignored() -> None:
    body = golden("pain002_statuses.xml").replace(
        b"<StsId>STS0001</StsId>",
        b"<StsId>STS0001</StsId><SplmtryData><Envlp><X>1</X></Envlp></SplmtryData>",
    )
    assert parse(body) == parse(golden("pain002_statuses.xml"))


# --- Replies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status_code"),
    [(ReplyKind.ok, 200), (ReplyKind.bad_signature, 401), (ReplyKind.malformed, 400)],
)
def test_replies_are_the_status_code_with_an_empty_body(kind: ReplyKind, status_code: int) -> None:
    reply = ADAPTER.reply(kind)
    assert (reply.status_code, reply.body) == (status_code, b"")
    assert reply.media_type == "application/xml"
