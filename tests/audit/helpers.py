"""Audit test helpers: the trail as a caller sees it, every page of it, and raw tampering."""

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import auth


async def trail(client, key: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of the trail the key sees, following the cursors."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {k: v for k, v in params.items() if v is not None}
        query.update({"cursor": cursor} if cursor else {})
        response = await client.get("/v1/regulator/audit", params=query, headers=auth(key))
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def tamper(engine: AsyncEngine, statement: str, **params: object) -> None:
    """Change trail rows as the database's superuser could: with the guards out of the way for this
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
                    " AND (name LIKE 'audit_%' OR name LIKE 'ledger_%')"
                )
            )
        ).all()
        for name, _ in guards:
            await connection.execute(text(f"DROP TRIGGER {name}"))
        await connection.execute(text(statement), params)
        for _, sql in guards:
            await connection.execute(text(sql))
