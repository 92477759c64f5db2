"""Ledger test helpers: a fresh institution with the accounts DOMAIN.md names, and raw tampering."""

import uuid
from dataclasses import dataclass
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.transaction import run_in_transaction
from app.ledger import service as ledger
from app.ledger.types import Account, AccountKind, EntryDraft


@dataclass
class Books:
    """One institution's accounts, by role."""

    institution_id: UUID
    cash: Account
    prepaid: list[Account]
    releasable: Account
    payout_in_transit: Account
    refund_in_transit: Account

    @property
    def all(self) -> list[Account]:
        return [
            self.cash,
            *self.prepaid,
            self.releasable,
            self.payout_in_transit,
            self.refund_in_transit,
        ]


async def open_books(engine: AsyncEngine, enrollments: int = 2) -> Books:
    institution_id = uuid.uuid4()
    specs = [
        ledger.AccountSpec(AccountKind.escrow_cash),
        *(ledger.AccountSpec(AccountKind.prepaid, ref=f"e{n}") for n in range(enrollments)),
        ledger.AccountSpec(AccountKind.releasable),
        ledger.AccountSpec(AccountKind.payout_in_transit),
        ledger.AccountSpec(AccountKind.refund_in_transit),
    ]
    opened = await run_in_transaction(
        engine, lambda c: ledger.open_accounts(c, institution_id, specs)
    )
    cash, *rest = opened
    return Books(institution_id, cash, rest[:enrollments], *rest[enrollments:])


def payment(key: str, books: Books, amount_fen: int, enrollment: int = 0) -> EntryDraft:
    """Money in: escrow cash up, the enrollment's prepaid liability up."""
    return EntryDraft.transfer(
        key, "payment", books.cash.id, books.prepaid[enrollment].id, amount_fen
    )


async def post(engine: AsyncEngine, books: Books, draft: EntryDraft):
    return await run_in_transaction(engine, lambda c: ledger.post(c, books.institution_id, draft))


async def balances(engine: AsyncEngine, books: Books) -> dict[UUID, int]:
    """Balances as each account's kind reads them."""
    async with engine.connect() as connection:
        found = await ledger.accounts(connection, books.institution_id)
    return {account_id: account.normal_balance_fen for account_id, account in found.items()}


async def verify(engine: AsyncEngine, institution_id: UUID):
    async with engine.connect() as connection:
        return await ledger.verify(connection, institution_id)


async def journal_size(engine: AsyncEngine, institution_id: UUID) -> tuple[int, int]:
    async with engine.connect() as connection:
        entries = await connection.scalar(
            text("SELECT count(*) FROM ledger_entries WHERE institution_id = :i"),
            {"i": db_id(engine, institution_id)},
        )
        postings = await connection.scalar(
            text("SELECT count(*) FROM ledger_postings WHERE institution_id = :i"),
            {"i": db_id(engine, institution_id)},
        )
    return entries, postings


async def tamper(engine: AsyncEngine, statement: str, **params: object) -> None:
    """Change journal or audit-trail rows behind the service's back, as someone with the
    database's own superuser powers would: with the append-only triggers out of the way for this
    one transaction."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
            await connection.execute(text(statement), params)
            return
        guards = (
            await connection.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                    " AND (name LIKE 'ledger_%' OR name LIKE 'audit_%')"
                )
            )
        ).all()
        for name, _ in guards:
            await connection.execute(text(f"DROP TRIGGER {name}"))
        await connection.execute(text(statement), params)
        for _, sql in guards:
            await connection.execute(text(sql))


async def plain_sql(engine: AsyncEngine, statement: str, **params: object) -> None:
    """A statement as anyone with write access to the tables would run it: the guards in place."""
    async with engine.begin() as connection:
        await connection.execute(text(statement), params)


def db_id(engine: AsyncEngine, value: UUID) -> object:
    """How a UUID is bound in raw SQL: native on PostgreSQL, 32 hex characters on SQLite."""
    return value.hex if engine.dialect.name == "sqlite" else value


@pytest.fixture
async def books(engine: AsyncEngine) -> Books:
    return await open_books(engine)
