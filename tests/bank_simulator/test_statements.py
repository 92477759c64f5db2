"""Daily statements in each bank's exact format, parsed back as the service would read them, with a
valid signature; and sent to the service."""

import csv
import io
from datetime import date, timedelta

import httpx
from defusedxml.ElementTree import fromstring

from app.banks.gmbank.signing import check_headers
from app.banks.iso20022.signing import check_signature
from app.banks.ums.signing import verify_file
from app.kit.clock import utcnow
from app.kit.money import fen_from_yuan
from tests.bank_simulator.conftest import (
    ACCOUNT,
    GM,
    ISO,
    UMS,
    FakeService,
    Keys,
    fund,
    gm_call,
    gm_transfer,
    iso_call,
    pain001,
    today,
    ums_call,
    ums_payout,
)


async def _day_of_business(sim: httpx.AsyncClient, keys: Keys, slug: str) -> None:
    """Two payments in (50.00 and 30.00), a payout of 60.00 out and back again (退票), and a
    payout of 10.00 that stays out. Closing balance: 70.00."""
    await fund(sim, slug, 5000, order_no="ORD1")
    await fund(sim, slug, 3000, order_no="ORD2")
    for instruction_id, fen in (("PAY1", 6000), ("PAY2", 1000)):
        if slug == UMS:
            await ums_call(sim, keys, "202002", ums_payout(instruction_id, fen))
        elif slug == ISO:
            await iso_call(sim, keys, pain001(instruction_id, f"{fen // 100}.00"))
        else:
            await gm_call(sim, keys, gm_transfer(instruction_id, f"{fen // 100}.00"))
    await sim.post("/sim/settle", json={"slug": slug, "outcome": "success"})
    await sim.post("/sim/returns", json={"slug": slug, "instruction_id": "PAY1"})


async def _statement(sim: httpx.AsyncClient, slug: str, day: str | None = None) -> httpx.Response:
    response = await sim.get(f"/sim/statements/{slug}/{ACCOUNT}/{day or today()}")
    assert response.status_code == 200, response.text
    return response


async def test_ums_statement_is_a_signed_hdt_file(sim: httpx.AsyncClient, keys: Keys) -> None:
    await _day_of_business(sim, keys, UMS)
    response = await _statement(sim, UMS)
    assert verify_file(
        response.content, response.headers["x-file-signature"], [keys.bank_rsa_public]
    )
    text = response.content.decode("utf-8")
    assert not text.startswith("\ufeff") and text.endswith("\n") and "\r" not in text
    header, *details, trailer = [line.split("|") for line in text.splitlines()]

    assert header == [
        "H",
        "G001",
        ACCOUNT,
        f"{date.fromisoformat(today()):%Y%m%d}",
        "0",
        "7000",
        "5",
    ]
    assert [d[0] for d in details] == ["D"] * 5
    assert all(len(d) == 10 for d in details)
    assert [(d[3], d[4], d[5], d[8]) for d in details] == [
        ("C", "5000", "5000", "ORD1"),
        ("C", "3000", "8000", "ORD2"),
        ("D", "6000", "2000", "PAY1"),
        ("D", "1000", "1000", "PAY2"),
        ("C", "6000", "7000", "PAY1"),
    ]
    assert details[4][9].startswith("RETURN")
    assert all(len(d[2]) == 14 for d in details)
    assert len({d[1] for d in details}) == 5  # every line its own seqId
    credits = sum(int(d[4]) for d in details if d[3] == "C")
    debits = sum(int(d[4]) for d in details if d[3] == "D")
    assert trailer == ["T", str(credits), str(debits)] == ["T", "14000", "7000"]


async def test_iso20022_statement_is_a_signed_camt053(sim: httpx.AsyncClient, keys: Keys) -> None:
    await _day_of_business(sim, keys, ISO)
    response = await _statement(sim, ISO)
    check_signature(
        response.headers["x-signature"], response.content, [keys.secret_to_service], utcnow()
    )
    root = fromstring(response.content)
    assert root.tag == "{urn:iso:std:iso:20022:tech:xsd:camt.053.001.08}Document"
    statement = root.find("{*}BkToCstmrStmt/{*}Stmt")
    assert statement is not None
    account = statement.find("{*}Acct/{*}Id/{*}Othr/{*}Id")
    assert account is not None and account.text == ACCOUNT
    balances = {}
    for balance in statement.findall("{*}Bal"):
        code = balance.find("{*}Tp/{*}CdOrPrtry/{*}Cd")
        amount = balance.find("{*}Amt")
        indicator = balance.find("{*}CdtDbtInd")
        assert code is not None and amount is not None and indicator is not None
        assert amount.get("Ccy") == "CNY" and indicator.text == "CRDT"
        balances[code.text] = fen_from_yuan(amount.text or "")
    assert balances == {"OPBD": 0, "CLBD": 7000}

    entries = statement.findall("{*}Ntry")
    signed = 0
    for entry in entries:
        amount = fen_from_yuan(entry.findtext("{*}Amt") or "")
        signed += amount if entry.findtext("{*}CdtDbtInd") == "CRDT" else -amount
        assert entry.findtext("{*}Sts/{*}Cd") == "BOOK"
    assert balances["OPBD"] + signed == balances["CLBD"]
    references = [e.findtext("{*}NtryDtls/{*}TxDtls/{*}Refs/{*}EndToEndId") for e in entries]
    assert references == ["ORD1", "ORD2", "PAY1", "PAY2", "PAY1"]
    returned = entries[-1].findtext("{*}NtryDtls/{*}TxDtls/{*}RtrInf/{*}Rsn/{*}Cd")
    assert returned == "AC04"
    assert len({e.findtext("{*}AcctSvcrRef") for e in entries}) == 5


async def test_gmbank_statement_is_a_signed_gbk_csv(sim: httpx.AsyncClient, keys: Keys) -> None:
    await _day_of_business(sim, keys, GM)
    response = await _statement(sim, GM)
    check_headers(response.headers, response.content, [keys.bank_sm2_public], keys.app_id, utcnow())
    assert "gbk" in response.headers["content-type"].lower()
    rows = list(csv.reader(io.StringIO(response.content.decode("gbk"), newline="")))
    header, *details, opening, closing = rows
    assert header == [
        "账号",
        "交易日期",
        "交易时间",
        "流水号",
        "借贷标志",
        "金额",
        "余额",
        "对方账号",
        "对方户名",
        "摘要",
        "业务参考号",
    ]
    assert opening == ["期初余额", "0.00"] and closing == ["期末余额", "70.00"]
    assert [(d[4], d[5], d[6], d[10]) for d in details] == [
        ("贷", "50.00", "50.00", "ORD1"),
        ("贷", "30.00", "80.00", "ORD2"),
        ("借", "60.00", "20.00", "PAY1"),
        ("借", "10.00", "10.00", "PAY2"),
        ("贷", "60.00", "70.00", "PAY1"),
    ]
    assert details[2][8] == "某某培训学校" and details[0][8] == "张三"
    assert all(d[0] == ACCOUNT and len(d[1]) == 8 and len(d[2]) == 6 for d in details)


async def test_a_day_without_business_carries_the_balance(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    await fund(sim, UMS, 5000)
    tomorrow = (date.fromisoformat(today()) + timedelta(days=1)).isoformat()
    yesterday = (date.fromisoformat(today()) - timedelta(days=1)).isoformat()
    later = (await _statement(sim, UMS, tomorrow)).content.decode().splitlines()
    earlier = (await _statement(sim, UMS, yesterday)).content.decode().splitlines()
    assert later[0].split("|")[4:] == ["5000", "5000", "0"] and later[1] == "T|0|0"
    assert earlier[0].split("|")[4:] == ["0", "0", "0"]


async def test_send_posts_the_signed_file_to_the_service(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    await fund(sim, GM, 5000)
    sent = await sim.post(f"/sim/statements/{GM}/{ACCOUNT}/{today()}/send")
    assert sent.json() == {"status_code": 200, "body": {"run_id": "run-1"}}
    (received,) = [r for r in service.received if r.kind == "statements"]
    assert received.slug == GM
    check_headers(received.headers, received.body, [keys.bank_sm2_public], keys.app_id, utcnow())
    assert received.body.decode("gbk").splitlines()[-1] == "期末余额,50.00"


async def test_statement_of_an_unknown_account_is_404(sim: httpx.AsyncClient) -> None:
    response = await sim.get(f"/sim/statements/{UMS}/nope/{today()}")
    assert response.status_code == 404
