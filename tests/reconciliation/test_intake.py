"""Bank statements in, through each bank's real format and signature (the bank simulator writes
and signs them): recorded once as a run, the bank's balance taken, refusals that record nothing."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.models import ReconciliationRun, SecurityEvent
from tests.banks.simulated import simulated_bank
from tests.factories import auth, make_world

ADAPTERS = ["ums", "iso20022", "gmbank"]
SIGNATURE = {"ums": "X-File-Signature", "iso20022": "X-Signature", "gmbank": "X-GM-Signature"}


def today():
    return utcnow().astimezone(SHANGHAI).date()


async def _count(engine, model, **where) -> int:
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return await Database(engine).run(lambda session: session.scalar(query))


async def _paid(sim, lessons: int = 3) -> dict:
    enrollment = await sim.enroll(lessons)
    paid = await sim.pay(enrollment["order_no"], enrollment["amount_fen"])
    assert paid["deliveries"][0]["status_code"] == 200, paid
    return enrollment


async def _statement(sim, day=None, account_no=None) -> tuple[bytes, dict[str, str]]:
    day = day or today()
    response = await sim.bank.get(
        f"/sim/statements/{sim.slug}/{account_no or sim.escrow_account_no}/{day.isoformat()}"
    )
    assert response.status_code == 200, response.text
    headers = {
        name: value
        for name, value in response.headers.items()
        if name.lower() == "content-type" or name.lower().startswith("x-")
    }
    return response.content, headers


async def _send(sim, body: bytes, headers: dict[str, str]):
    return await sim.service.post(f"/v1/banks/{sim.slug}/statements", content=body, headers=headers)


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_clean_day_is_one_run_and_gives_the_bank_balance(engine, database_url, adapter):
    async with simulated_bank(engine, database_url, adapter) as sim:
        enrollment = await _paid(sim)
        body, headers = await _statement(sim)

        first = await _send(sim, body, headers)
        # The bank sends it again: the same file (gmbank signs each sending with a new nonce).
        again = await _send(
            sim, *(await _statement(sim) if adapter == "gmbank" else (body, headers))
        )

        assert first.status_code == 200, first.text
        run = first.json()
        assert (run["status"], run["lines"], run["breaks"]) == ("clean", 1, [])
        assert run["closing_fen"] == run["ledger_balance_fen"] == enrollment["amount_fen"]
        assert run["statement_date"] == today().isoformat() and run["replayed"] is False
        assert again.status_code == 200 and again.json()["replayed"] is True
        assert again.json()["id"] == run["id"]
        assert await _count(engine, ReconciliationRun, institution_id=sim.institution_id) == 1
        view = await sim.balance_view()
        assert view["bank_balance_fen"] == enrollment["amount_fen"]
        assert view["bank_balance_as_of"] is not None


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_money_at_the_bank_the_ledger_never_saw_is_a_balance_break_and_lowers_b(
    engine, database_url, adapter
):
    async with simulated_bank(engine, database_url, adapter, opening_balance_fen=7_000) as sim:
        await _paid(sim)
        body, headers = await _statement(sim)

        run = (await _send(sim, body, headers)).json()

        assert run["status"] == "breaks"
        [found] = run["breaks"]
        assert found["type"] == "balance_mismatch" and found["status"] == "open"
        assert (found["amount_fen"], found["expected_fen"]) == (
            run["ledger_balance_fen"] + 7_000,
            run["ledger_balance_fen"],
        )


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_statement_whose_signature_fails_records_only_a_security_event(
    engine, database_url, adapter
):
    async with simulated_bank(engine, database_url, adapter) as sim:
        await _paid(sim)
        body, headers = await _statement(sim)
        name = next(n for n in headers if n.lower() == SIGNATURE[adapter].lower())
        headers[name] = headers[name][:-8] + (
            "A" * 8 if not headers[name].endswith("A" * 8) else "B" * 8
        )
        before = await _count(engine, SecurityEvent, bank_slug=sim.slug)

        refused = await _send(sim, body, headers)

        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "bad_signature"
        assert await _count(engine, SecurityEvent, bank_slug=sim.slug) == before + 1
        assert await _count(engine, ReconciliationRun, institution_id=sim.institution_id) == 0
        assert (await sim.balance_view())["bank_balance_fen"] is None


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_an_account_no_institution_at_the_bank_holds_is_refused_and_kept(
    engine, database_url, adapter
):
    async with simulated_bank(engine, database_url, adapter) as sim:
        stray = f"9{utcnow().timestamp():.0f}"[:16]
        opened = await sim.bank.post(
            "/sim/accounts", json={"slug": sim.slug, "account_no": stray, "balance_fen": 100}
        )
        assert opened.status_code in (200, 201), opened.text
        # A movement, so that every format names the account (a gmbank file names it per row).
        await sim.pay("PGSTRAY", 500, account_no=stray)
        body, headers = await _statement(sim, account_no=stray)

        refused = await _send(sim, body, headers)

        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "unknown_escrow_account", refused.text


# A gmbank file names its day only in its rows, and no movement is booked on a day to come.
@pytest.mark.parametrize("adapter", ["ums", "iso20022"])
async def test_a_statement_of_a_day_to_come_is_refused(engine, database_url, adapter):
    async with simulated_bank(engine, database_url, adapter) as sim:
        await _paid(sim)
        body, headers = await _statement(sim, day=today() + timedelta(days=1))

        refused = await _send(sim, body, headers)

        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "statement_in_future", refused.text
        assert await _count(engine, ReconciliationRun, institution_id=sim.institution_id) == 0


async def test_runs_are_listed_to_their_institution_and_regulator_only(engine, database_url):
    async with simulated_bank(engine, database_url, "ums") as sim:
        await _paid(sim)
        body, headers = await _statement(sim)
        run = (await _send(sim, body, headers)).json()

        mine = await sim.service.get(
            f"/v1/institutions/{sim.institution_id}/reconciliations", headers=sim.institution
        )
        regulated = await sim.service.get(
            f"/v1/regulator/reconciliations?institution_id={sim.institution_id}",
            headers=sim.regulator,
        )
        stranger = await make_world(engine)
        hidden = await sim.service.get(
            f"/v1/institutions/{sim.institution_id}/reconciliations",
            headers=auth(stranger.institution_key),
        )
        elsewhere = await sim.service.get(
            f"/v1/regulator/reconciliations?institution_id={sim.institution_id}",
            headers=auth(stranger.regulator_key),
        )

        assert [item["id"] for item in mine.json()["items"]] == [run["id"]]
        assert [item["id"] for item in regulated.json()["items"]] == [run["id"]]
        assert hidden.status_code == 404
        assert elsewhere.json()["items"] == []


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_lost_notification_is_repaired_by_its_statement_line(engine, database_url, adapter):
    """The payment notified matches its line; the one whose notification the bank still holds is
    money at the bank the ledger never heard of: the statement credits its enrollment, once, and
    the notification that comes at last changes nothing."""
    async with simulated_bank(engine, database_url, adapter) as sim:
        enrollment = await _paid(sim, lessons=5)
        lost = await sim.enroll(2)
        held = await sim.pay(lost["order_no"], lost["amount_fen"], deliver="hold")

        body, headers = await _statement(sim)
        run = (await _send(sim, body, headers)).json()

        assert (run["lines"], run["status"]) == (2, "breaks")
        [found] = run["breaks"]
        assert (found["type"], found["amount_fen"], found["status"]) == (
            "missing_in_ledger",
            lost["amount_fen"],
            "closed",
        )
        assert (found["closed_by"], found["bank_reference"]) == (
            "statement",
            held["bank_reference"],
        )
        assert f"credited to enrollment {lost['id']}" in found["close_note"]
        # The repair is in the books: the ledger closes where the bank does.
        total = enrollment["amount_fen"] + lost["amount_fen"]
        assert run["closing_fen"] == run["ledger_balance_fen"] == total
        repaired = await sim.service.get(f"/v1/enrollments/{lost['id']}", headers=sim.institution)
        assert repaired.json()["status"] == "active"

        late = await sim.bank.post(
            "/sim/messages/deliver", json={"message_ids": [held["message_id"]]}
        )
        [delivered] = late.json()["deliveries"][0]["deliveries"]
        assert delivered["acknowledged"], late.text
        view = await sim.balance_view()
        assert view["ledger_balance_fen"] == total == await sim.bank_balance()
