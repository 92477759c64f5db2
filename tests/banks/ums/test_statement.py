"""The ums daily statement (spec ums.md section 3): the simulator's file read back exactly, each
kind of bad file refused naming its line, and the file's SHA256withRSA signature checked."""

import pytest

from app.banks.protocol import SignatureProblem, StatementMalformed, VerificationFailed
from tests.banks.statements import ACCOUNT_NO, DAY, account, bank, expected, read

BANK = bank("ums")
BOOKS = account()
BODY = BANK.statement(BOOKS)


def lines_of(body: bytes) -> list[str]:
    return body.decode().splitlines()


def with_line(number: int, text: str) -> bytes:
    """The statement with its line `number` (1-based) replaced."""
    lines = lines_of(BODY)
    lines[number - 1] = text
    return ("\n".join(lines) + "\n").encode()


def with_field(number: int, field: int, value: str) -> bytes:
    fields = lines_of(BODY)[number - 1].split("|")
    fields[field] = value
    return with_line(number, "|".join(fields))


def malformed(body: bytes) -> StatementMalformed:
    with pytest.raises(StatementMalformed) as caught:
        read(BANK.adapter, [body])
    return caught.value


def test_the_simulators_statement_reads_back_exactly() -> None:
    lines, summary = read(BANK.adapter, [BODY])
    want_lines, want_summary = expected(BOOKS)
    assert summary == want_summary
    assert summary.account_no == ACCOUNT_NO and summary.day == DAY
    assert [line.number for line in lines] == [2, 3, 4, 5, 6]
    for line, want in zip(lines, want_lines, strict=True):
        assert {field: getattr(line, field) for field in want} == want
    payment, _, payout, returned, refund = lines
    assert payment.counterparty_name == "李四, 王五"
    assert payment.balance_after_fen == 5_700_00 + 1234_56
    assert (payout.reference, payout.memo, payout.returned) == ("PAYOUT1", "PAYOUT", False)
    # 退票: a C line quoting the payout's srcReqId, memo RETURN.
    assert (returned.reference, returned.memo, returned.returned) == (
        "PAYOUT1",
        "RETURN AC04",
        True,
    )
    assert refund.counterparty_account_no is None
    assert summary.closing_fen == refund.balance_after_fen


@pytest.mark.parametrize("amount", ["0", "-5", "12.50", "1e3", "", " 99", "099"])
def test_a_line_without_an_exact_amount_of_money_is_named(amount: str) -> None:
    error = malformed(with_field(3, 4, amount))
    assert error.line == 3
    assert "amount" in error.detail


def test_the_h_count_must_be_the_number_of_d_lines() -> None:
    error = malformed(with_field(1, 6, "6"))
    assert error.line == 1 and "6 D lines" in error.detail
    error = malformed(with_field(1, 6, "4"))
    assert error.line == 6 and "beyond the 4" in error.detail


def test_the_t_sums_must_be_the_sums_of_the_lines() -> None:
    last = len(lines_of(BODY))
    error = malformed(with_field(last, 1, "203556"))
    assert error.line == last and "sums" in error.detail
    error = malformed(with_field(last, 2, "0"))
    assert error.line == last


def test_a_balance_after_that_does_not_follow_is_named() -> None:
    error = malformed(with_field(4, 5, "613556"))
    assert error.line == 4 and "balance after" in error.detail


def test_a_closing_balance_that_does_not_roll_forward_is_read_as_the_bank_gives_it() -> None:
    # Reconciliation reports it (a balance_mismatch break), with both figures.
    _, summary = read(BANK.adapter, [with_field(1, 5, "570100")])
    assert summary.opening_fen + summary.credits_fen - summary.debits_fen != summary.closing_fen


def test_an_opening_balance_the_first_line_does_not_follow_is_named() -> None:
    error = malformed(with_field(1, 4, "570001"))
    assert error.line == 1 and "opening" in error.detail


def test_a_line_of_another_day_is_named() -> None:
    error = malformed(with_field(5, 2, "20261129000001"))
    assert error.line == 5 and "2026-11-29" in error.detail


@pytest.mark.parametrize(
    ("number", "text", "problem"),
    [
        (1, "T|0|0", "begin with its H"),
        (3, "D|1|20261128091500|X|99|693555|a|b|ORD2|", "not C or D"),
        (3, "D|1|20261128251500|C|99|693555|a|b|ORD2|", "not a valid time"),
        (3, "D|1|2026112809150|C|99|693555|a|b|ORD2|", "yyyyMMddHHmmss"),
        (3, "D|1|20261128091500|C|99|693555|a|b|ORD2", "10 fields"),
        (3, "X|1", "not an H, D or T line"),
        (3, "", "not an H, D or T line"),
        (3, "D||20261128091500|C|99|693555|a|b|ORD2|", "no seqId"),
    ],
)
def test_a_line_that_does_not_parse_is_named(number: int, text: str, problem: str) -> None:
    error = malformed(with_line(number, text))
    assert error.line == number and problem in error.detail


def test_anything_after_the_t_line_or_no_t_line_is_refused() -> None:
    lines = lines_of(BODY)
    error = malformed(BODY + lines[2].encode() + b"\n")
    assert error.line == len(lines) + 1
    error = malformed(("\n".join(lines[:-1]) + "\n").encode())
    assert "no T line" in error.detail
    assert "empty" in malformed(b"").detail


def test_bytes_that_are_not_utf8_are_named() -> None:
    body = BODY.replace("学费".encode(), "学费".encode("gbk"))
    error = malformed(body)
    assert error.line == 3 and "utf-8" in error.detail


def test_crlf_line_ends_read_the_same() -> None:
    assert read(BANK.adapter, [BODY.replace(b"\n", b"\r\n")]) == read(BANK.adapter, [BODY])


# --- Signature ---------------------------------------------------------------------------------


def test_a_file_signed_by_the_bank_verifies() -> None:
    BANK.adapter.verify_statement(BANK.config, BANK.request(BODY))


def test_a_file_changed_after_signing_is_refused() -> None:
    request = BANK.request(BODY)
    changed = BODY.replace(b"|99|", b"|98|")
    with pytest.raises(VerificationFailed) as caught:
        BANK.adapter.verify_statement(
            BANK.config, type(request)(request.headers, changed, request.received_at)
        )
    assert caught.value.problem is SignatureProblem.bad


def test_a_file_signed_with_another_key_is_refused() -> None:
    other = bank("ums")
    with pytest.raises(VerificationFailed) as caught:
        BANK.adapter.verify_statement(BANK.config, other.request(BODY))
    assert caught.value.problem is SignatureProblem.bad


def test_a_file_without_its_signature_is_refused() -> None:
    request = BANK.request(BODY)
    with pytest.raises(VerificationFailed) as caught:
        BANK.adapter.verify_statement(
            BANK.config, type(request)({}, request.body, request.received_at)
        )
    assert caught.value.problem is SignatureProblem.missing
