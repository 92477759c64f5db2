"""The gmbank daily statement (gmbank.md "Statement"): the simulator's GBK CSV read back exactly,
each kind of bad file refused naming its row, and the SM2 signature checked as a notification's."""

from dataclasses import replace

import pytest

from app.banks.protocol import SignatureProblem, StatementMalformed, VerificationFailed
from tests.banks.statements import ACCOUNT_NO, DAY, account, bank, expected, read

BANK = bank("gmbank")
BOOKS = account()
BODY = BANK.statement(BOOKS)
TEXT = BODY.decode("gbk")


def malformed(body: bytes) -> StatementMalformed:
    with pytest.raises(StatementMalformed) as caught:
        read(BANK.adapter, [body])
    return caught.value


def with_text(old: str, new: str) -> bytes:
    assert old in TEXT
    return TEXT.replace(old, new, 1).encode("gbk")


def test_the_simulators_statement_reads_back_exactly() -> None:
    lines, summary = read(BANK.adapter, [BODY])
    want_lines, want_summary = expected(BOOKS)
    assert summary == want_summary
    assert summary.account_no == ACCOUNT_NO and summary.day == DAY
    assert [line.number for line in lines] == [2, 3, 4, 5, 6]
    for line, want in zip(lines, want_lines, strict=True):
        assert {field: getattr(line, field) for field in want} == want
    payment, tuition, payout, returned, refund = lines
    assert payment.counterparty_name == "李四, 王五"  # a quoted CSV field
    assert (payment.amount_fen, payment.balance_after_fen) == (1234_56, 6934_56)
    assert (tuition.amount_fen, tuition.memo) == (99, "学费")
    assert (payout.reference, payout.memo, payout.returned) == ("PAYOUT1", "PAYOUT", False)
    # 退票: a 贷 row quoting the payout's instrId, 摘要 RETURN.
    assert (returned.reference, returned.memo, returned.returned) == (
        "PAYOUT1",
        "RETURN AC04",
        True,
    )
    assert summary.closing_fen == refund.balance_after_fen


@pytest.mark.parametrize("amount", ["0.00", "-0.99", "0.999", "1,234.56", "", "1e3", "￥0.99"])
def test_a_row_without_an_exact_amount_of_money_is_named(amount: str) -> None:
    error = malformed(with_text(",贷,0.99,", f',贷,"{amount}",'))
    assert error.line == 3 and "amount" in error.detail


def test_a_row_of_another_account_is_named() -> None:
    error = malformed(
        with_text(f"{ACCOUNT_NO},20261128,120000", "6222000000000001,20261128,120000")
    )
    assert error.line == 4 and "6222000000000001" in error.detail


def test_a_row_of_another_day_is_named() -> None:
    error = malformed(with_text(f"{ACCOUNT_NO},20261128,153000", f"{ACCOUNT_NO},20261127,153000"))
    assert error.line == 5 and "2026-11-27" in error.detail


def test_bytes_that_are_not_gbk_are_named() -> None:
    body = BODY.replace("学费".encode("gbk"), b"\x81\x20")  # a lead byte with no trail byte
    error = malformed(body)
    assert error.line == 3 and "gbk" in error.detail


def test_a_multibyte_character_cut_by_a_line_break_is_named() -> None:
    body = BODY.replace("学费".encode("gbk"), "学".encode("gbk")[:1] + b"\r\n")
    assert malformed(body).line == 3


def test_a_closing_balance_that_does_not_roll_forward_is_read_as_the_bank_gives_it() -> None:
    # Reconciliation reports it (a balance_mismatch break), with both figures.
    _, summary = read(BANK.adapter, [with_text("期末余额,5700.99", "期末余额,5701.00")])
    assert summary.opening_fen + summary.credits_fen - summary.debits_fen != summary.closing_fen


def test_an_opening_balance_the_first_row_does_not_follow_is_named() -> None:
    error = malformed(with_text("期初余额,5700.00", "期初余额,5700.01"))
    assert error.line == 8 and "opening" in error.detail


@pytest.mark.parametrize(
    ("old", "new", "line", "problem"),
    [
        ("账号,交易日期", "帐号,交易日期", 1, "header"),
        (",贷,0.99,", ",C,0.99,", 3, "not 贷 or 借"),
        ("20261128,091500", "20261128,096000", 3, "not a valid time"),
        (
            ",6935.55,6217000010002000,张三,学费",
            ",6935.56,6217000010002000,张三,学费",
            3,
            "balance",
        ),
        ("期末余额,5700.99\r\n", "", 8, "期末余额"),
        ("期末余额,5700.99\r\n", "期末余额,5700.99\r\n,\r\n", 9, "after 期末余额"),
        ("学费,ORD2", "学费", 3, "11 fields"),
    ],
)
def test_a_row_that_does_not_parse_is_named(old: str, new: str, line: int, problem: str) -> None:
    error = malformed(with_text(old, new))
    assert error.line == line and problem in error.detail


def test_a_file_without_its_balance_rows_is_refused() -> None:
    body = TEXT[: TEXT.index("期初余额")].encode("gbk")
    assert "期初余额" in malformed(body).detail
    assert "header" in malformed(b"").detail


def test_a_line_break_inside_a_quoted_field_is_part_of_it() -> None:
    lines, _ = read(BANK.adapter, [with_text(",学费,", ',"学费\r\n第二行",')])
    assert lines[1].memo == "学费\n第二行"


def test_a_day_without_movements_names_no_account_and_is_refused() -> None:
    """The format names the account only on detail rows: a quiet day's file cannot say whose it
    is, so it is refused rather than guessed (the intake must learn the account another way)."""
    body = "\r\n".join([TEXT.splitlines()[0], "期初余额,5700.00", "期末余额,5700.00", ""])
    error = malformed(body.encode("gbk"))
    assert "no account" in error.detail


# --- Signature ---------------------------------------------------------------------------------


def test_a_file_signed_by_the_bank_verifies() -> None:
    verified = BANK.adapter.verify_statement(BANK.config, BANK.request(BODY))
    assert verified.nonce  # the intake records it, as a notification's


def test_a_file_changed_after_signing_is_refused() -> None:
    request = BANK.request(BODY)
    changed = with_text(",贷,0.99,", ",贷,0.98,")
    with pytest.raises(VerificationFailed) as caught:
        BANK.adapter.verify_statement(BANK.config, replace(request, body=changed))
    assert caught.value.problem is SignatureProblem.bad


def test_a_file_without_its_signature_is_refused() -> None:
    request = BANK.request(BODY)
    headers = {k: v for k, v in request.headers.items() if k != "x-gm-signature"}
    with pytest.raises(VerificationFailed) as caught:
        BANK.adapter.verify_statement(BANK.config, replace(request, headers=headers))
    assert caught.value.problem is SignatureProblem.missing
