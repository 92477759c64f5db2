"""What a statement does to the ledger, through each bank's real statement format and signature: a
day with every break type planted once yields exactly those breaks, the ones the statement proves
are put right once, a statement ahead of the day's notifications leaves nothing for them to do, a
corrected statement supersedes the first, and a movement too young for its day's statement is
carried to the next one."""

import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.models import Alert, Instruction
from bank_simulator.state import Account, Direction, Transaction
from tests.banks.simulated import Simulated, simulated_bank
from tests.factories import make_institution, make_jurisdiction

ADAPTERS = ["ums", "iso20022", "gmbank"]
NO_GRACE = {"grace_minutes": 0}


def today():
    return utcnow().astimezone(SHANGHAI).date()


async def paid(sim: Simulated, lessons: int, **options: Any) -> dict[str, Any]:
    """An enrollment paid at the bank; its notification delivered unless `deliver="hold"`."""
    enrollment = await sim.enroll(lessons)
    payment = await sim.pay(enrollment["order_no"], enrollment["amount_fen"], **options)
    if options.get("deliver") != "hold":
        assert payment["deliveries"][0]["acknowledged"], payment
    return {**enrollment, "payment": payment}


async def refunded(sim: Simulated, lessons: int, result: str = "now") -> dict[str, Any]:
    """An enrollment paid, refunded in full, the refund executed by the bank; its result
    delivered (`result="now"`) or held by the bank (`"hold"`)."""
    enrollment = await paid(sim, lessons)
    await sim.refund_in_full(enrollment)
    [instruction] = [i for i in await sim.bank_instructions() if i["kind"] == "refund"]
    await sim.settle("success", instruction_ids=[instruction["id"]], deliver=result)
    if result == "now" and sim.adapter == "ums":  # ums results are asked for, not pushed
        await sim.run_job("poll_instructions")
    return {**enrollment, "instruction_id": instruction["id"]}


async def enrollment_of(sim: Simulated, enrollment_id: str) -> dict[str, Any]:
    response = await sim.service.get(f"/v1/enrollments/{enrollment_id}", headers=sim.institution)
    assert response.status_code == 200, response.text
    return response.json()


def tampered(
    sim: Simulated,
    *,
    opening_off: int = 0,
    drop: set[str] = frozenset(),
    amounts: dict[str, int] | None = None,
    twice: set[str] = frozenset(),
    extra: list[tuple[Direction, int, str, str]] = (),
    move: dict[str, datetime] | None = None,
    references: dict[str, str] | None = None,
    day=None,
) -> tuple[bytes, dict[str, str]]:
    """The bank's statement of the escrow account, written and signed by the bank's own dialect,
    from its books changed so: the opening off by some fen, lines (by bank serial) left off,
    listed with another amount, listed twice or booked at another time, and lines added
    (direction, amount, reference, memo)."""
    simulator = sim.simulator
    bank = simulator.bank(sim.slug)
    dialect = simulator.dialect(bank)
    books = simulator.books.accounts[(sim.slug, sim.escrow_account_no)]
    opening = books.opening_balance_fen + opening_off
    copy = Account(
        slug=books.slug,
        account_no=books.account_no,
        name=books.name,
        opening_balance_fen=opening,
        balance_fen=opening,
    )
    amounts, move, references = amounts or {}, move or {}, references or {}
    now = utcnow()
    planned: list[Transaction] = [
        dataclasses.replace(
            t,
            amount_fen=amounts.get(t.bank_reference, t.amount_fen),
            booked_at=move.get(t.bank_reference, t.booked_at),
            reference=references.get(t.bank_reference, t.reference),
        )
        for t in books.transactions
        if t.bank_reference not in drop
    ]
    planned += [t for t in planned if t.bank_reference in twice]
    for n, (direction, amount, reference, memo) in enumerate(extra):
        planned.append(
            Transaction(0, now, direction, amount, 0, reference, "", "", memo, f"PLANTED{n:08d}")
        )
    for t in sorted(planned, key=lambda t: t.booked_at):
        copy.book(
            at=t.booked_at,
            direction=t.direction,
            amount_fen=t.amount_fen,
            reference=t.reference,
            counterparty_account=t.counterparty_account,
            counterparty_name=t.counterparty_name,
            memo=t.memo,
            bank_reference=t.bank_reference,
            return_reason=t.return_reason,
        )
    body = dialect.statement(bank, copy, day or today(), now)
    headers = {"Content-Type": dialect.statement_content_type}
    headers.update(dialect.statement_headers(bank, body, now))
    return body, headers


async def send(sim: Simulated, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    response = await sim.service.post(
        f"/v1/banks/{sim.slug}/statements", content=body, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def the_bank_statement(sim: Simulated, day=None) -> dict[str, Any]:
    return await send(sim, *tampered(sim, day=day))


def by_type(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {each["type"]: each for each in run["breaks"]}
    assert len(found) == len(run["breaks"]), run["breaks"]
    return found


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_every_break_type_planted_once_yields_exactly_those_breaks(
    engine, database_url, adapter
):
    async with simulated_bank(engine, database_url, adapter, statements=NO_GRACE) as sim:
        listed_twice = await paid(sim, 1)
        changed = await paid(sim, 2)
        lost = await paid(sim, 3, deliver="hold")
        left_off = await paid(sim, 4)
        bounced = await refunded(sim, 5)
        returned = await sim.bank.post(
            "/sim/returns",
            json={"slug": sim.slug, "instruction_id": bounced["instruction_id"], "deliver": "hold"},
        )
        assert returned.status_code == 200, returned.text
        refunded_before = (await enrollment_of(sim, bounced["id"]))["refunded_fen"]
        body, headers = tampered(
            sim,
            opening_off=1,
            drop={left_off["payment"]["bank_reference"]},
            amounts={changed["payment"]["bank_reference"]: changed["amount_fen"] + 100},
            twice={listed_twice["payment"]["bank_reference"]},
            extra=[(Direction.debit, 4_321, "", "FEE")],
        )

        run = await send(sim, body, headers)

        found = by_type(run)
        assert sorted(found) == sorted(
            [
                "missing_in_ledger",
                "missing_at_bank",
                "amount_mismatch",
                "duplicate",
                "returned",
                "balance_mismatch",
                "unauthorized_debit",
            ]
        )
        assert run["status"] == "breaks"
        # What the statement proves is put right once, and its break closed with the reason.
        assert found["missing_in_ledger"]["status"] == "closed"
        assert (await enrollment_of(sim, lost["id"]))["status"] == "active"
        assert found["returned"]["status"] == "closed"
        assert "back where it came from" in found["returned"]["close_note"]
        assert (await enrollment_of(sim, bounced["id"]))["refunded_fen"] == refunded_before - (
            bounced["amount_fen"]
        )
        # The rest waits for a person, each with both sides' figures.
        assert found["missing_at_bank"]["status"] == "open"
        assert found["missing_at_bank"]["expected_fen"] == left_off["amount_fen"]
        assert (
            found["amount_mismatch"]["amount_fen"],
            found["amount_mismatch"]["expected_fen"],
        ) == (
            changed["amount_fen"] + 100,
            changed["amount_fen"],
        )
        assert found["duplicate"]["bank_reference"] == listed_twice["payment"]["bank_reference"]
        assert found["unauthorized_debit"]["amount_fen"] == 4_321
        # The other breaks explain every fen of the closing but the one planted in the opening.
        assert (
            found["balance_mismatch"]["amount_fen"] - found["balance_mismatch"]["expected_fen"] == 1
        )
        assert "1 fen that no line explains" in found["balance_mismatch"]["detail"]

        async def alerts(session):
            return (
                await session.scalars(
                    select(Alert.kind, Alert.level).where(
                        Alert.institution_id == sim.institution_id,
                        Alert.kind == "unauthorized_debit",
                    )
                )
            ).all()

        assert await Database(engine).run(alerts) == ["unauthorized_debit"]
        assert (await sim.balance_view())["bank_balance_fen"] == run["closing_fen"]


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_statement_ahead_of_the_days_notifications_leaves_them_nothing_to_do(
    engine, database_url, adapter
):
    """The bank's statement comes before its notifications of two payments and before the result
    of a refund it executed: the statement credits the payments and settles the refund, and when
    the notifications come at last they change nothing."""
    async with simulated_bank(engine, database_url, adapter, statements=NO_GRACE) as sim:
        first, second = await paid(sim, 2, deliver="hold"), await paid(sim, 3, deliver="hold")
        refund = await refunded(sim, 4, result="hold")

        run = await the_bank_statement(sim)

        assert {(b["type"], b["status"]) for b in run["breaks"]} == {
            ("missing_in_ledger", "closed")
        }
        assert len(run["breaks"]) == 2
        assert run["closing_fen"] == run["ledger_balance_fen"] == await sim.bank_balance()
        assert (await enrollment_of(sim, refund["id"]))["status"] == "refunded"
        before = await sim.balance_view()

        held = [m["id"] for m in (await sim.bank.get("/sim/messages")).json() if not m["delivered"]]
        # Two payments and the refund's result (ums answers a query instead: nothing held).
        assert len(held) == (2 if adapter == "ums" else 3)
        delivered = await sim.bank.post("/sim/messages/deliver", json={"message_ids": held})
        assert delivered.status_code == 200, delivered.text
        if adapter == "ums":
            await sim.run_job("poll_instructions")

        after = await sim.balance_view()
        assert (
            after["ledger_balance_fen"] == before["ledger_balance_fen"] == await sim.bank_balance()
        )
        for enrollment in (first, second):
            assert (await enrollment_of(sim, enrollment["id"]))["status"] == "active"
        listed = await sim.service.get(
            f"/v1/institutions/{sim.institution_id}/reconciliations", headers=sim.institution
        )
        assert [b["status"] for r in listed.json()["items"] for b in r["breaks"]] == ["closed"] * 2


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_corrected_statement_of_the_same_day_supersedes_the_first(
    engine, database_url, adapter
):
    async with simulated_bank(engine, database_url, adapter, statements=NO_GRACE) as sim:
        await paid(sim, 2)
        wrong = await send(sim, *tampered(sim, extra=[(Direction.debit, 500, "", "FEE")]))
        assert [b["type"] for b in wrong["breaks"]] == ["unauthorized_debit"]

        corrected = await the_bank_statement(sim)

        assert corrected["status"] == "clean" and corrected["id"] != wrong["id"]
        listed = await sim.service.get(
            "/v1/regulator/reconciliations",
            headers=sim.regulator,
            params={"institution_id": str(sim.institution_id)},
        )
        runs = {run["id"]: run for run in listed.json()["items"]}
        assert runs[wrong["id"]]["status"] == "superseded"
        [closed] = runs[wrong["id"]]["breaks"]
        assert closed["status"] == "closed" and closed["closed_by"] == "statement"
        assert corrected["id"] in closed["close_note"]
        assert (await sim.balance_view())["bank_balance_fen"] == corrected["closing_fen"]


async def test_a_movement_too_young_for_its_days_statement_is_carried_to_the_next(
    engine, database_url
):
    """Within the bank's grace (a whole day here) a payment the bank books only the next day is
    not missing from today's statement; tomorrow's lists it and both days reconcile. One the next
    statement does not list either is missing at the bank then."""
    async with simulated_bank(
        engine, database_url, "ums", statements={"grace_minutes": 1440}
    ) as sim:
        late, never = await paid(sim, 2), await paid(sim, 3)
        tomorrow = today() + timedelta(days=1)
        booked_tomorrow = datetime.combine(tomorrow, datetime.min.time(), SHANGHAI) + timedelta(
            minutes=5
        )
        late_serial = late["payment"]["bank_reference"]
        never_serial = never["payment"]["bank_reference"]

        first = await send(
            sim, *tampered(sim, drop={never_serial}, move={late_serial: booked_tomorrow})
        )

        assert first["status"] == "clean", first["breaks"]
        assert first["lines"] == 0
        with time_machine.travel(booked_tomorrow + timedelta(hours=1), tick=True):
            second = await send(
                sim,
                *tampered(
                    sim, drop={never_serial}, move={late_serial: booked_tomorrow}, day=tomorrow
                ),
            )
        assert second["lines"] == 1
        [missing] = second["breaks"]
        assert (missing["type"], missing["expected_fen"]) == (
            "missing_at_bank",
            never["amount_fen"],
        )
        assert missing["movement_id"] == f"payment:{never['id']}"


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_money_a_statement_held_in_suspense_goes_to_the_order_its_notification_names(
    engine, database_url, adapter
):
    """The statement lists a payment without its order number: the money is held in suspense and
    the break stays open, until the bank's notification names the order; then the money moves to
    the enrollment, once, and the break closes by itself."""
    async with simulated_bank(engine, database_url, adapter, statements=NO_GRACE) as sim:
        unnamed = await paid(sim, 2, deliver="hold")
        serial = unnamed["payment"]["bank_reference"]

        run = await send(sim, *tampered(sim, references={serial: ""}))

        [held] = run["breaks"]
        assert (held["type"], held["status"]) == ("missing_in_ledger", "open")
        assert "held in suspense" in held["detail"]
        assert run["closing_fen"] == run["ledger_balance_fen"]
        assert (await sim.balance_view())["suspense_fen"] == unnamed["amount_fen"]

        for _ in range(2):  # and the bank sends it again
            message = unnamed["payment"]["message_id"]
            delivered = await sim.bank.post(
                "/sim/messages/deliver", json={"message_ids": [message]}
            )
            assert delivered.json()["deliveries"][0]["deliveries"][0]["acknowledged"]

        assert (await enrollment_of(sim, unnamed["id"]))["status"] == "active"
        view = await sim.balance_view()
        assert (view["suspense_fen"], view["unconsumed_fen"]) == (0, unnamed["amount_fen"])
        assert view["ledger_balance_fen"] == await sim.bank_balance()
        listed = await sim.service.get(
            f"/v1/institutions/{sim.institution_id}/reconciliations", headers=sim.institution
        )
        [closed] = listed.json()["items"][0]["breaks"]
        assert (closed["status"], closed["closed_by"]) == ("closed", "bank notification")
        assert unnamed["order_no"] in closed["close_note"]
        # The bank corrects its statement, the order number filled in: the enrollment's payment.
        again = await the_bank_statement(sim)
        assert again["status"] == "clean", (again["replayed"], again["breaks"])


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_an_instruction_missing_at_the_bank_closes_when_the_bank_fails_it(
    engine, database_url, adapter
):
    """A refund sent that the day's statement does not list is missing at the bank; when the bank
    reports it failed, the statement was right (the money never left) and the break closes."""
    async with simulated_bank(engine, database_url, adapter, statements=NO_GRACE) as sim:
        await sim.refund_in_full(await paid(sim, 3))
        [instruction] = [i for i in await sim.bank_instructions() if i["kind"] == "refund"]

        run = await the_bank_statement(sim)

        [missing] = run["breaks"]
        assert (missing["type"], missing["movement_id"]) == ("missing_at_bank", instruction["id"])
        # Not in the ledger's escrow cash either (never settled): the balances agree.
        assert run["closing_fen"] == run["ledger_balance_fen"]

        await sim.settle("fail", instruction_ids=[instruction["id"]])
        if adapter == "ums":
            await sim.run_job("poll_instructions")

        listed = await sim.service.get(
            f"/v1/institutions/{sim.institution_id}/reconciliations", headers=sim.institution
        )
        [closed] = listed.json()["items"][0]["breaks"]
        assert (closed["status"], closed["closed_by"]) == ("closed", "bank result")
        assert "never left" in closed["close_note"]


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_return_quoting_another_institutions_instruction_moves_nothing(
    engine, database_url, adapter
):
    """A bank's statement speaks only for its own account: a 退票 line quoting a refund of another
    institution (at the same bank) is a break that stays open, and that refund stays as it was."""
    async with simulated_bank(engine, database_url, adapter, statements=NO_GRACE) as sim:
        await paid(sim, 1)
        code = await make_jurisdiction(engine)
        other = await make_institution(engine, code, bank_slug=sim.slug)
        foreign = Instruction(
            institution_id=other.id,
            id="RF" + uuid.uuid4().hex[:30],
            kind="refund",
            transfer_id=uuid.uuid4(),
            amount_fen=3_000,
            payee_name="someone",
            status="succeeded",
            bank_slug=sim.slug,
            memo="REFUND",
            created_at=utcnow(),
            sent_at=utcnow(),
            resolved_at=utcnow(),
        )
        await Database(engine).run(lambda session: _add(session, foreign))

        run = await send(
            sim, *tampered(sim, extra=[(Direction.credit, 3_000, foreign.id, "RETURN AC04")])
        )

        [found] = run["breaks"]
        assert (found["type"], found["status"]) == ("returned", "open")
        status = await Database(engine).run(
            lambda session: session.scalar(
                select(Instruction.status).where(Instruction.id == foreign.id)
            )
        )
        assert status == "succeeded"


async def _add(session, row) -> None:
    session.add(row)
    await session.flush()


async def test_a_statement_that_comes_late_closes_its_days_statement_missing_break(
    engine, database_url
):
    async with simulated_bank(engine, database_url, "gmbank", statements=NO_GRACE) as sim:
        await paid(sim, 2)
        end_of_today = datetime.combine(today() + timedelta(days=1), datetime.min.time(), SHANGHAI)
        assert await sim.run_job("watch_reconciliation", end_of_today + timedelta(hours=13)) >= 1

        async def runs() -> dict[str, dict[str, Any]]:
            listed = await sim.service.get(
                f"/v1/institutions/{sim.institution_id}/reconciliations", headers=sim.institution
            )
            return {run["status"]: run for run in listed.json()["items"]}

        missing = (await runs())["missing"]
        assert missing["statement_date"] == today().isoformat()
        assert [(b["type"], b["status"]) for b in missing["breaks"]] == [
            ("statement_missing", "open")
        ]

        came = await the_bank_statement(sim)

        assert came["status"] == "clean"
        [closed] = (await runs())["missing"]["breaks"]
        assert (closed["status"], closed["closed_by"]) == ("closed", "statement")
        assert came["id"] in closed["close_note"]
