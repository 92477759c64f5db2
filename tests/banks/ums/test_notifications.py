"""Payment notifications as the bank sends them: signature checks, events, replies."""

from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr

from app.banks.protocol import (
    BankAdapter,
    DebitBooked,
    MalformedMessage,
    Notice,
    Notification,
    PaymentReceived,
    ReplyKind,
    SignatureProblem,
    VerificationFailed,
    Verified,
)
from app.banks.ums import ADAPTER, UmsConfig
from app.kit.clock import SHANGHAI
from tests.banks.ums.bank_side import (
    golden_form,
    inbound,
    sign_form,
    with_fields,
)
from tests.banks.ums.conftest import NEXT_NOTIFY_KEY, NOTIFY_KEY

GOLDEN_NOTIFICATIONS = {
    "notify_trade_success_md5.form": Notification(
        "8f1c2d3e4b5a4c6d9e8f0a1b2c3d4e5f",
        (
            PaymentReceived(
                account_no="6222020200112233445",
                order_no="PG20240301A0001",
                amount_fen=1280000,
                bank_reference="24030110153000012345",
                paid_at=datetime(2024, 3, 1, 10, 15, 30, tzinfo=SHANGHAI),
                channel_order_id="4200002158202403011234567890",
            ),
        ),
    ),
    "notify_trade_success_sha256.form": Notification(
        "N2024030223595900042",
        (
            PaymentReceived(
                account_no="6222020200112233445",
                order_no="PG20240302Z9",
                amount_fen=1,
                bank_reference="24030223595900000042",
                paid_at=datetime(2024, 3, 2, 23, 59, 59, tzinfo=SHANGHAI),
                channel_order_id="2024030222001400000012",
            ),
        ),
    ),
    "notify_trade_closed.form": Notification(
        "c0ffee0000000000000000000000a001",
        (Notice("6222020200112233445", "ums status TRADE_CLOSED for order PG20240301A0002"),),
    ),
    "notify_wait_buyer_pay.form": Notification(
        "c0ffee0000000000000000000000a002",
        (Notice("6222020200112233445", "ums status WAIT_BUYER_PAY for order PG20240301A0003"),),
    ),
    "notify_trade_refund.form": Notification(
        "c0ffee0000000000000000000000a003",
        (
            DebitBooked(
                account_no="6222020200112233445",
                amount_fen=1_280_000,
                description="ums TRADE_REFUND of order PG20240301A0001 (1280000 fen)",
                bank_reference="24030110153000012345",
                order_no="PG20240301A0001",
            ),
        ),
    ),
    "notify_new_order.form": Notification(
        "c0ffee0000000000000000000000a004",
        (Notice("6222020200112233446", "ums status NEW_ORDER for order PG20240301A0004"),),
    ),
    "notify_unknown.form": Notification(
        "c0ffee0000000000000000000000a005",
        (Notice("6222020200112233446", "ums status UNKNOWN for order PG20240301A0005"),),
    ),
}
SUCCESS = golden_form("notify_trade_success_md5.form")


def test_the_adapter_is_a_bank_adapter() -> None:
    adapter: BankAdapter = ADAPTER
    assert adapter.name == "ums"
    assert adapter.config_model is UmsConfig
    assert adapter.results_by_query is True


@pytest.mark.parametrize("name", sorted(GOLDEN_NOTIFICATIONS))
def test_golden_notifications_verify_and_parse(config: UmsConfig, name: str) -> None:
    request = inbound(sign_form(golden_form(name), NOTIFY_KEY))
    assert ADAPTER.verify(config, request) == Verified()
    notification = ADAPTER.parse_notification(request)
    assert notification == GOLDEN_NOTIFICATIONS[name]
    for event in notification.events:
        if isinstance(event, PaymentReceived):
            assert event.paid_at.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize("name", sorted(GOLDEN_NOTIFICATIONS))
def test_one_changed_byte_anywhere_fails_verification(config: UmsConfig, name: str) -> None:
    signed = sign_form(golden_form(name), NOTIFY_KEY)
    for index in range(len(signed)):
        tampered = bytearray(signed)
        tampered[index] ^= 0x01
        with pytest.raises(VerificationFailed):
            ADAPTER.verify(config, inbound(bytes(tampered)))


def test_a_notification_without_sign_is_refused_as_missing(config: UmsConfig) -> None:
    for body in (SUCCESS, SUCCESS + b"&sign=", b""):
        with pytest.raises(VerificationFailed) as error:
            ADAPTER.verify(config, inbound(body))
        assert error.value.problem == SignatureProblem.missing


@pytest.mark.parametrize(
    "body",
    [
        # signType absent, unknown, or not as the spec writes it
        sign_form(with_fields(SUCCESS, signType=None), NOTIFY_KEY, "MD5"),
        sign_form(with_fields(SUCCESS, signType="RSA2"), NOTIFY_KEY, "MD5"),
        sign_form(with_fields(SUCCESS, signType="md5"), NOTIFY_KEY, "MD5"),
        # hashed with another algorithm than the one it names
        sign_form(SUCCESS, NOTIFY_KEY, "SHA256"),
        # signed with a key we do not hold
        sign_form(SUCCESS, "someone-else"),
        # the digest in lower case is not the digest the spec asks for
        SUCCESS + b"&sign=" + sign_form(SUCCESS, NOTIFY_KEY).rsplit(b"=", 1)[1].lower(),
        # a field given twice: which value was signed cannot be known
        sign_form(SUCCESS, NOTIFY_KEY) + b"&totalAmount=99999999",
        sign_form(SUCCESS, NOTIFY_KEY) + b"&sign=AB",
        # not UTF-8, raw or percent-encoded
        sign_form(SUCCESS, NOTIFY_KEY).replace(b"buyerName=", b"buyerName=\xff"),
        sign_form(SUCCESS, NOTIFY_KEY).replace(b"buyerName=", b"buyerName=%FF"),
        # not a form
        b'{"status":"TRADE_SUCCESS","sign":"AB"}',
    ],
)
def test_bad_signatures_are_refused(config: UmsConfig, body: bytes) -> None:
    with pytest.raises(VerificationFailed) as error:
        ADAPTER.verify(config, inbound(body))
    assert error.value.problem == SignatureProblem.bad


def test_any_configured_notify_key_verifies(config: UmsConfig) -> None:
    keys = [SecretStr(NOTIFY_KEY), SecretStr(NEXT_NOTIFY_KEY)]
    rotating = config.model_copy(update={"md5_key": keys})
    for key in (NOTIFY_KEY, NEXT_NOTIFY_KEY):
        assert ADAPTER.verify(rotating, inbound(sign_form(SUCCESS, key))) == Verified()
    with pytest.raises(VerificationFailed):
        ADAPTER.verify(config, inbound(sign_form(SUCCESS, NEXT_NOTIFY_KEY)))


def test_empty_fields_are_not_signed_and_extra_fields_are(config: UmsConfig) -> None:
    signed = sign_form(with_fields(SUCCESS, memo=""), NOTIFY_KEY)
    assert ADAPTER.verify(config, inbound(signed)) == Verified()
    # The bank may add a field: it is signed like the others and otherwise ignored.
    extra = sign_form(with_fields(SUCCESS, newField="新"), NOTIFY_KEY)
    assert ADAPTER.verify(config, inbound(extra)) == Verified()
    assert (
        ADAPTER.parse_notification(inbound(extra))
        == (GOLDEN_NOTIFICATIONS["notify_trade_success_md5.form"])
    )
    with pytest.raises(VerificationFailed):
        ADAPTER.verify(config, inbound(sign_form(SUCCESS, NOTIFY_KEY) + b"&newField=x"))


def _parse_signed(config: UmsConfig, body: bytes) -> Notification:
    request = inbound(sign_form(body, NOTIFY_KEY))
    ADAPTER.verify(config, request)  # signed correctly: only the content is wrong
    return ADAPTER.parse_notification(request)


@pytest.mark.parametrize(
    "amount",
    [
        "12800.00",
        "1280000.001",
        "1.5",
        "-1280000",
        "+1280000",
        "1e6",
        "1E6",
        "",
        " 1280000",
        "1280000 ",
        "01280000",
        "0x10",
        "１２８",  # noqa: RUF001  full-width digits are not digits here
        "1,280,000",
        "99999999999999999999",
    ],
)
def test_an_amount_that_is_not_exact_fen_is_malformed(config: UmsConfig, amount: str) -> None:
    for name in ("notify_trade_success_md5.form", "notify_trade_closed.form"):
        with pytest.raises(MalformedMessage):
            _parse_signed(config, with_fields(golden_form(name), totalAmount=amount))


@pytest.mark.parametrize(
    "pay_time",
    [
        "2024-03-01T10:15:30",
        "2024-3-1 10:15:30",
        "2024-02-30 10:15:30",
        "2024-03-01 24:00:00",
        "2024-03-01",
        "20240301101530",
        "2024-03-01 10:15:30+08:00",
    ],
)
def test_a_bad_pay_time_is_malformed(config: UmsConfig, pay_time: str) -> None:
    with pytest.raises(MalformedMessage):
        _parse_signed(config, with_fields(SUCCESS, payTime=pay_time))


@pytest.mark.parametrize(
    "field", ["notifyId", "acctNo", "merOrderId", "totalAmount", "status", "seqId", "payTime"]
)
def test_a_payment_missing_a_required_field_is_malformed(config: UmsConfig, field: str) -> None:
    for value in (None, ""):
        with pytest.raises(MalformedMessage):
            _parse_signed(config, with_fields(SUCCESS, **{field: value}))


def test_optional_fields_may_be_absent(config: UmsConfig) -> None:
    bare = with_fields(SUCCESS, targetOrderId=None, settleDate=None, mid=None, tid=None)
    (event,) = _parse_signed(config, bare).events
    assert isinstance(event, PaymentReceived)
    assert event.channel_order_id is None
    # Other statuses need neither seqId nor payTime.
    closed = golden_form("notify_trade_closed.form")
    assert b"seqId" not in closed and b"payTime" not in closed
    (notice,) = _parse_signed(config, closed).events
    assert isinstance(notice, Notice)


@pytest.mark.parametrize(
    "status", ["TRADE_CLOSED", "trade_success", "TRADE_SUCCESS ", "TRADE_FINISHED", "PAID", "成功"]
)
def test_only_trade_success_credits_money(config: UmsConfig, status: str) -> None:
    (event,) = _parse_signed(config, with_fields(SUCCESS, status=status)).events
    assert event == Notice("6222020200112233445", f"ums status {status} for order PG20240301A0001")


def test_replies_are_the_ones_the_bank_reads() -> None:
    ok = ADAPTER.reply(ReplyKind.ok)
    assert (ok.status_code, ok.body, ok.media_type) == (200, b"SUCCESS", "text/plain")
    bad = ADAPTER.reply(ReplyKind.bad_signature)
    assert (bad.status_code, bad.body, bad.media_type) == (401, b"FAILED", "text/plain")
    malformed = ADAPTER.reply(ReplyKind.malformed)
    assert (malformed.status_code, malformed.body, malformed.media_type) == (
        400,
        b"FAILED",
        "text/plain",
    )
