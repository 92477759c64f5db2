"""Audit test helpers: the trail as a caller sees it, every page of it, and raw tampering (the ledger's)."""

from typing import Any

from tests.factories import auth
from tests.ledger.conftest import tamper

__all__ = ["tamper", "trail"]


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
