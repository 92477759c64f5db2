"""The regulator's exports through the API: CSV with a BOM and XLSX, Chinese headings, amounts in
元 to the fen, times in Asia/Shanghai, filters and scope."""

import csv
import io
import uuid
from datetime import date, timedelta
from urllib.parse import unquote

import openpyxl
import pytest

from app.db.unit import Database
from app.exports import sources
from app.kit.clock import utcnow
from app.models import Alert, ReconciliationBreak, ReconciliationRun
from app.models.reconciliation import RunStatus
from tests.factories import auth, make_institution, make_paid_enrollment, make_world

URL = "/v1/regulator/exports"


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(response.content[3:].decode("utf-8"))))


def _xlsx(response) -> list[list]:
    assert response.status_code == 200, response.text
    book = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)
    return [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]


async def _break_and_alert(engine, world, opened_at):
    """A break of -123.45 元 (the bank's side) against 0.05 元 and an open alert, opened then."""

    async def work(session):
        run = ReconciliationRun(
            institution_id=world.institution_id,
            id=uuid.uuid4(),
            bank_slug="ums",
            account_no=world.escrow_account_no,
            statement_date=date(2026, 11, 28),
            status=RunStatus.breaks,
            lines=1,
            opening_fen=0,
            closing_fen=0,
            credits_fen=0,
            debits_fen=0,
            ledger_balance_fen=0,
            created_at=opened_at,
        )
        session.add(run)
        session.add(
            ReconciliationBreak(
                institution_id=world.institution_id,
                id=uuid.uuid4(),
                run_id=run.id,
                type="amount_mismatch",
                status="open",
                bank_reference="REF1",
                amount_fen=-12_345,
                expected_fen=5,
                detail="金额不符",
                opened_at=opened_at,
                opened_by="reconciliation",
            )
        )
        session.add(
            Alert(
                institution_id=world.institution_id,
                id=uuid.uuid4(),
                key=f"k{uuid.uuid4().hex}",
                kind="suspense",
                level="YELLOW",
                reason="不明来款",
                opened_at=opened_at,
            )
        )

    await Database(engine).run(work)


async def test_balances_csv_and_xlsx(engine, client):
    world = await make_world(engine, min_balance_floor_fen=12_345)
    await make_paid_enrollment(engine, world, lessons=3, lesson_price_fen=33_333)
    csv_rows = _csv(await client.get(f"{URL}/balances.csv", headers=auth(world.regulator_key)))
    headings, *rows = csv_rows
    assert headings[:3] == ["机构名称", "统一社会信用代码", "机构ID"]
    assert "监管账户余额(元)" in headings and "最低余额(元)" in headings
    [row] = rows  # its jurisdiction's one institution, no other
    record = dict(zip(headings, row, strict=True))
    assert record["机构ID"] == str(world.institution_id)
    assert record["监管账户余额(元)"] == "999.99" and record["最低余额(元)"] == "123.45"
    assert record["未消课金额(元)"] == "999.99" and record["预警等级"] == "GREEN"

    sheet = _xlsx(await client.get(f"{URL}/balances.xlsx", headers=auth(world.regulator_key)))
    assert sheet[0] == headings
    record = dict(zip(sheet[0], sheet[1], strict=True))
    assert str(record["监管账户余额(元)"]) == "999.99"  # the exact decimal, as a number cell
    assert record["机构名称"] == rows[0][0]


async def test_alerts_and_breaks_with_negative_amounts_and_shanghai_times(engine, client):
    world = await make_world(engine)
    opened = utcnow().replace(hour=20, minute=30, second=0, microsecond=0) - timedelta(days=2)
    await _break_and_alert(engine, world, opened)
    local = (opened + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")  # UTC+8, no DST

    headings, *rows = _csv(await client.get(f"{URL}/breaks.csv", headers=auth(world.regulator_key)))
    record = dict(zip(headings, rows[0], strict=True))
    assert record["银行金额(元)"] == "-123.45" and record["账务金额(元)"] == "0.05"
    assert record["发现时间"] == local and record["差错类型"] == "amount_mismatch"
    assert record["对账单日期"] == "2026-11-28"

    sheet = _xlsx(await client.get(f"{URL}/breaks.xlsx", headers=auth(world.regulator_key)))
    record = dict(zip(sheet[0], sheet[1], strict=True))
    assert str(record["银行金额(元)"]) == "-123.45" and record["发现时间"] == local

    headings, *rows = _csv(await client.get(f"{URL}/alerts.csv", headers=auth(world.regulator_key)))
    record = dict(zip(headings, rows[0], strict=True))
    assert (record["预警等级"], record["原因"], record["状态"]) == ("YELLOW", "不明来款", "未解除")
    assert record["开始时间"] == local and record["解除时间"] == ""

    # Filters: status, and a period that leaves the rows out.
    closed = _csv(
        await client.get(
            f"{URL}/alerts.csv", params={"status": "closed"}, headers=auth(world.regulator_key)
        )
    )
    assert closed == [headings]
    later = (opened + timedelta(hours=1)).isoformat()
    assert _csv(
        await client.get(
            f"{URL}/breaks.csv", params={"since": later}, headers=auth(world.admin_key)
        )
    )[1:] == [] or all(
        row[2] != str(world.institution_id)
        for row in _csv(
            await client.get(
                f"{URL}/breaks.csv", params={"since": later}, headers=auth(world.admin_key)
            )
        )[1:]
    )
    mine = _csv(
        await client.get(
            f"{URL}/breaks.csv",
            params={"institution_id": str(world.institution_id)},
            headers=auth(world.admin_key),
        )
    )
    assert len(mine) == 2


async def test_audit_export_lists_actions_and_money(engine, client):
    world = await make_world(engine)
    await make_paid_enrollment(engine, world, lessons=2, lesson_price_fen=10_000)
    await client.post(
        f"/v1/regulator/institutions/{world.institution_id}/freeze",
        json={"reason": "检查"},
        headers=auth(world.regulator_key),
    )
    headings, *rows = _csv(
        await client.get(
            f"{URL}/audit.csv",
            params={"institution_id": str(world.institution_id)},
            headers=auth(world.regulator_key),
        )
    )
    assert headings[:3] == ["时间", "类别", "操作者角色"]
    records = [dict(zip(headings, row, strict=True)) for row in rows]
    assert {"资金", "操作"} == {record["类别"] for record in records}
    freeze = next(r for r in records if r["操作"] == "institution.freeze")
    assert freeze["操作者角色"] == "regulator" and "检查" in freeze["详情"]
    money = next(r for r in records if r["类别"] == "资金")
    assert money["金额(元)"] == "200.00"
    sheet = _xlsx(
        await client.get(
            f"{URL}/audit.xlsx",
            params={"institution_id": str(world.institution_id)},
            headers=auth(world.regulator_key),
        )
    )
    assert sheet[0] == headings and len(sheet) == len(rows) + 1


async def test_pages_follow_each_other_without_gaps_or_repeats(engine, client, monkeypatch):
    world = await make_world(engine)
    for _ in range(4):
        await make_institution(engine, world.jurisdiction_code)
    monkeypatch.setattr(sources, "PAGE_SIZE", 2)  # five institutions: three pages
    _, *rows = _csv(await client.get(f"{URL}/balances.csv", headers=auth(world.regulator_key)))
    ids = [row[2] for row in rows]
    assert len(ids) == 5 and len(set(ids)) == 5 and ids == sorted(ids, key=uuid.UUID)
    _, *xlsx_rows = _xlsx(
        await client.get(f"{URL}/balances.xlsx", headers=auth(world.regulator_key))
    )
    assert [row[2] for row in xlsx_rows] == ids


async def test_file_names_and_refusals(engine, client):
    world = await make_world(engine)
    other = await make_world(engine)
    response = await client.get(f"{URL}/alerts.xlsx", headers=auth(world.regulator_key))
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="alerts-')
    assert "预警记录" in unquote(disposition.split("filename*=UTF-8''")[1])
    for path in ("balances.pdf", "salaries.csv", "balances", "audit.CSV"):
        refused = await client.get(f"{URL}/{path}", headers=auth(world.regulator_key))
        assert refused.status_code == 404, path
        if path != "balances":
            assert refused.json()["code"] == "unknown_export"
    outsider = await client.get(
        f"{URL}/breaks.csv",
        params={"institution_id": str(world.institution_id)},
        headers=auth(other.regulator_key),
    )
    assert outsider.status_code == 404
    assert (
        await client.get(f"{URL}/balances.csv", headers=auth(world.institution_key))
    ).status_code == 404
    assert (await client.get(f"{URL}/balances.csv")).status_code == 401
    future = (utcnow() + timedelta(days=1)).isoformat()
    refused = await client.get(
        f"{URL}/balances.csv", params={"as_of": future}, headers=auth(world.regulator_key)
    )
    assert refused.status_code == 422 and refused.json()["code"] == "as_of_in_future"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_operator_exports_every_jurisdiction(engine, client, fmt):
    world = await make_world(engine)
    other = await make_world(engine)
    response = await client.get(f"{URL}/balances.{fmt}", headers=auth(world.admin_key))
    rows = _csv(response) if fmt == "csv" else _xlsx(response)
    ids = {row[2] for row in rows[1:]}
    assert {str(world.institution_id), str(other.institution_id)} <= ids
