"""Tamper evidence for the audit trail: each record's hash covers everything it says and the hash
of the record before it in its chain, so an altered record no longer matches its hash, and a
removed one leaves a gap in `seq` and a `prev_hash` that no longer matches."""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from app.kit.clock import as_utc

GENESIS_HASH = "0" * 64
PLATFORM_CHAIN = UUID(int=0)  # the chain of actions about no institution

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def normalised(details: dict[str, Any] | None) -> dict[str, Any] | None:
    """`details` as the database gives them back (ids, moments and decimals as text), so that the
    hash computed now is the hash recomputed from the stored row."""
    if details is None:
        return None
    return json.loads(json.dumps(details, default=str, ensure_ascii=False))


def record_hash(
    prev_hash: str,
    *,
    institution_id: UUID,
    seq: int,
    at: datetime,
    jurisdiction_code: str | None,
    actor_role: str,
    actor_id: str,
    action: str,
    object_type: str | None,
    object_id: str | None,
    address: str | None,
    details: dict[str, Any] | None,
) -> str:
    canonical = json.dumps(
        [
            prev_hash,
            str(institution_id),
            seq,
            # Microseconds since the epoch: exact on both databases, no text format involved.
            (as_utc(at) - _EPOCH) // timedelta(microseconds=1),
            jurisdiction_code,
            actor_role,
            actor_id,
            action,
            object_type,
            object_id,
            address,
            details,
        ],
        separators=(",", ":"),
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
