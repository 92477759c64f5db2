"""The lean reference for `bench.requests`: the least a FastAPI service pays for the database work
of an ordinary request, so that PrepaidGuard's figures can be read against it in the same run.

    LEAN_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/db uvicorn bench.lean_app:app

One uvicorn worker, a raw asyncpg pool, no ORM, no middleware, no authentication. Two endpoints:

- `POST /lean/accounts/{id}/lessons`: the shape of a lesson record, four statements in one
  transaction (lock the account row, update it, insert a history row, read the institution's sum),
  with a JSON body validated by pydantic and a JSON answer, as any FastAPI service has;
- `GET /lean/accounts/{id}`: one `SELECT` of one row.

Its tables (`lean_accounts`, `lean_history`) are made by `create_tables`, which the benchmark calls
before it starts the server.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from pydantic import AwareDatetime, BaseModel, Field

ACCOUNTS = 1000
# Ten accounts per "institution", so the sum reads a handful of rows through an index, as a
# balance figure of one institution does.
PER_INSTITUTION = 10


class LessonIn(BaseModel):
    lesson_key: str = Field(min_length=1, max_length=100)
    occurred_at: AwareDatetime
    count: int = Field(default=1, gt=0)


class LessonOut(BaseModel):
    id: int
    account_id: int
    balance: int
    institution_balance: int
    occurred_at: datetime


class AccountOut(BaseModel):
    id: int
    institution: int
    balance: int


async def create_tables(connection: asyncpg.Connection) -> None:
    """The reference's own tables, made afresh: `ACCOUNTS` accounts and an empty history."""
    await connection.execute(
        """
        DROP TABLE IF EXISTS lean_history, lean_accounts;
        CREATE TABLE lean_accounts (
            id integer PRIMARY KEY,
            institution integer NOT NULL,
            balance bigint NOT NULL
        );
        CREATE INDEX lean_accounts_institution ON lean_accounts (institution);
        CREATE TABLE lean_history (
            id bigserial PRIMARY KEY,
            account_id integer NOT NULL REFERENCES lean_accounts (id),
            lesson_key text NOT NULL,
            delta bigint NOT NULL,
            occurred_at timestamptz NOT NULL
        );
        """
    )
    await connection.executemany(
        "INSERT INTO lean_accounts (id, institution, balance) VALUES ($1, $2, 1000000)",
        [(n, n // PER_INSTITUTION) for n in range(1, ACCOUNTS + 1)],
    )
    await connection.execute("ANALYZE lean_accounts")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["LEAN_DATABASE_URL"], min_size=4, max_size=20
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/lean/accounts/{account_id}/lessons", status_code=201)
async def record(account_id: int, body: LessonIn, request: Request) -> LessonOut:
    async with request.app.state.pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "SELECT institution, balance FROM lean_accounts WHERE id = $1 FOR UPDATE", account_id
        )
        if row is None:
            raise HTTPException(404, "no such account")
        balance = await connection.fetchval(
            "UPDATE lean_accounts SET balance = balance - $2 WHERE id = $1 RETURNING balance",
            account_id,
            body.count,
        )
        history_id = await connection.fetchval(
            "INSERT INTO lean_history (account_id, lesson_key, delta, occurred_at) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            account_id,
            body.lesson_key,
            -body.count,
            body.occurred_at,
        )
        total = await connection.fetchval(
            "SELECT sum(balance) FROM lean_accounts WHERE institution = $1", row["institution"]
        )
    return LessonOut(
        id=history_id,
        account_id=account_id,
        balance=balance,
        institution_balance=total,
        occurred_at=body.occurred_at,
    )


@app.get("/lean/accounts/{account_id}")
async def read(account_id: int, request: Request) -> AccountOut:
    row = await request.app.state.pool.fetchrow(
        "SELECT id, institution, balance FROM lean_accounts WHERE id = $1", account_id
    )
    if row is None:
        raise HTTPException(404, "no such account")
    return AccountOut(**row)


@app.get("/healthz")
async def healthz() -> str:
    """What the benchmark polls until the server answers."""
    return "ok"
