"""The iso20022 daily statement (camt.053.001.08): the simulator's file read back exactly, XML
that could expand or fetch anything refused, each bad entry named by its line, and the HMAC
signature checked as a notification's."""

from dataclasses import replace

import pytest

from app.banks.protocol import SignatureProblem, StatementMalformed, VerificationFailed
from app.kit.clock import SHANGHAI
from tests.banks.statements import ACCOUNT_NO, DAY, account, at, bank, expected, read

BANK = bank("iso20022")
BOOKS = account()
BODY = BANK.statement(BOOKS)
TEXT = BODY.decode()
# Where each Ntry begins: what a line names.
ENTRY_LINES = [n for n, text in enumerate(TEXT.splitlines(), 1) if text.strip() == "<Ntry>"]


def malformed(body: bytes) -> StatementMalformed:
    with pytest.raises(StatementMalformed) as caught:
        read(BANK.adapter, [body])
    return caught.value


def with_text(old: str, new: str, count: int = 1) -> bytes:
    assert old in TEXT
    return TEXT.replace(old, new, count).encode()


def test_the_simulators_statement_reads_back_exactly() -> None:
    lines, summary = read(BANK.adapter, [BODY])
    want_lines, want_summary = expected(BOOKS)
    assert summary == want_summary
    assert summary.account_no == ACCOUNT_NO and summary.day == DAY
    assert [line.number for line in lines] == ENTRY_LINES
    for line, want in zip(lines, want_lines, strict=True):
        assert {field: getattr(line, field) for field in want} == want
    payment, _, payout, returned, _ = lines
    assert (payment.counterparty_name, payment.counterparty_account_no) == (
        "李四, 王五",
        "6217000010002000",
    )
    assert (payout.reference, payout.counterparty_name, payout.returned) == (
        "PAYOUT1",
        "某某培训学校",
        False,
    )
    # 退票: a CRDT entry quoting the payout's EndToEndId, with RtrInf.
    assert (returned.reference, returned.returned) == ("PAYOUT1", True)
    assert all(line.balance_after_fen is None for line in lines)  # camt.053 prints none


def test_entries_not_booked_are_not_lines() -> None:
    body = with_text("<Cd>BOOK</Cd>", "<Cd>PDNG</Cd>")  # the first entry only pending
    booked, summary = read(BANK.adapter, [body])
    everything, _ = read(BANK.adapter, [BODY])
    assert len(booked) == len(everything) - 1
    # Without it, the day's balances no longer roll forward: reconciliation reports that.
    assert summary.opening_fen + summary.credits_fen - summary.debits_fen != summary.closing_fen


def test_a_negative_balance_is_read_as_the_bank_says() -> None:
    body = with_text(
        '<Amt Ccy="CNY">5700.00</Amt>\n        <CdtDbtInd>CRDT</CdtDbtInd>',
        '<Amt Ccy="CNY">5700.00</Amt>\n        <CdtDbtInd>DBIT</CdtDbtInd>',
    )
    _, summary = read(BANK.adapter, [body])
    assert summary.opening_fen == -570000


# --- Safe XML ----------------------------------------------------------------------------------

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE Document [
<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
]>
"""


def test_an_entity_bomb_is_refused() -> None:
    body = BOMB + BODY.split(b"?>", 1)[1].replace(b"<Id>6222020200112233</Id>", b"<Id>&e;</Id>")
    error = malformed(body)  # by libxml2's own limit, or else by ours on any DTD
    assert "DTD" in error.detail or "entity" in error.detail


def test_an_external_entity_is_refused_and_not_fetched(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("6222020200112233")
    dtd = f'<!DOCTYPE Document [<!ENTITY acct SYSTEM "file://{secret}">]>'.encode()
    body = BODY.replace(b"?>", b"?>\n" + dtd, 1).replace(
        b"<Id>6222020200112233</Id>", b"<Id>&acct;</Id>"
    )
    assert "DTD" in malformed(body).detail


def test_a_dtd_alone_is_refused() -> None:
    body = BODY.replace(b"?>", b"?>\n<!DOCTYPE Document>", 1)
    assert "DTD" in malformed(body).detail


def test_xml_that_is_not_well_formed_is_named() -> None:
    body = with_text("<AcctSvcrRef>2026112809150000000002</AcctSvcrRef>", "<AcctSvcrRef>x</Acct>")
    error = malformed(body)
    assert error.line == ENTRY_LINES[1] + 12 and "well-formed" in error.detail


def test_another_document_is_refused() -> None:
    body = BODY.replace(b"camt.053.001.08", b"camt.054.001.08")
    assert "camt.053" in malformed(body).detail


# --- Entries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["0.00", "-0.99", "0.999", "", "1e3"])
def test_an_entry_without_an_exact_amount_of_money_is_named(amount: str) -> None:
    error = malformed(with_text('<Amt Ccy="CNY">0.99</Amt>', f'<Amt Ccy="CNY">{amount}</Amt>'))
    assert error.line == ENTRY_LINES[1]


def test_an_entry_in_another_currency_is_named() -> None:
    error = malformed(with_text('<Amt Ccy="CNY">0.99</Amt>', '<Amt Ccy="USD">0.99</Amt>'))
    assert error.line == ENTRY_LINES[1] and "USD" in error.detail


def test_an_entry_of_another_day_is_named() -> None:
    error = malformed(with_text("2026-11-28T15:30:00+08:00", "2026-11-29T15:30:00+08:00"))
    assert error.line == ENTRY_LINES[3] and "2026-11-29" in error.detail


def test_the_day_is_beijing_time_whatever_the_offset() -> None:
    lines, _ = read(
        BANK.adapter, [with_text("2026-11-28T00:00:00+08:00</DtTm>", "2026-11-27T16:00:00Z</DtTm>")]
    )
    assert lines[0].booked_at == at(0)  # midnight in Beijing, 16:00 UTC the day before
    assert lines[0].booked_at.astimezone(SHANGHAI).date() == DAY


def test_a_second_statement_of_another_account_is_refused() -> None:
    start, end = TEXT.index("<Stmt>"), TEXT.index("</Stmt>") + len("</Stmt>")
    other = TEXT[start:end].replace(ACCOUNT_NO, "6222000000000001")
    error = malformed((TEXT[:end] + other + TEXT[end:]).encode())
    assert "second Stmt" in error.detail


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("<CdtDbtInd>CRDT</CdtDbtInd>\n        <Sts>", "<CdtDbtInd>X</CdtDbtInd>\n        <Sts>", "CdtDbtInd"),
        ("<AcctSvcrRef>2026112800000000000001</AcctSvcrRef>", "", "AcctSvcrRef"),
        ("<DtTm>2026-11-28T00:00:00+08:00</DtTm>", "<DtTm>2026-11-28</DtTm>", "BookgDt"),
    ],
)  # fmt: skip
def test_an_entry_that_does_not_parse_is_named(old: str, new: str, problem: str) -> None:
    error = malformed(with_text(old, new))
    assert error.line == ENTRY_LINES[0] and problem in error.detail


def test_a_statement_without_its_balances_is_refused() -> None:
    start = TEXT.index("<Bal>")
    end = TEXT.index("</Bal>", TEXT.index("CLBD")) + len("</Bal>")
    assert "OPBD" in malformed((TEXT[:start] + TEXT[end:]).encode()).detail


# --- Signature ---------------------------------------------------------------------------------


def test_a_file_signed_by_the_bank_verifies() -> None:
    BANK.adapter.verify_statement(BANK.config, BANK.request(BODY))


def test_a_file_changed_after_signing_is_refused() -> None:
    request = BANK.request(BODY)
    changed = with_text('<Amt Ccy="CNY">0.99</Amt>', '<Amt Ccy="CNY">0.98</Amt>')
    with pytest.raises(VerificationFailed) as caught:
        BANK.adapter.verify_statement(BANK.config, replace(request, body=changed))
    assert caught.value.problem is SignatureProblem.bad


def test_a_file_without_its_signature_is_refused() -> None:
    request = BANK.request(BODY)
    with pytest.raises(VerificationFailed) as caught:
        BANK.adapter.verify_statement(BANK.config, replace(request, headers={}))
    assert caught.value.problem is SignatureProblem.missing
