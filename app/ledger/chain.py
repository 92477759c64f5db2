"""Tamper evidence: each entry's digest, chained per institution.

`content_hash` covers what the entry says (institution, key, kind, memo, postings in order);
`hash` = SHA-256(previous hash, seq, posted_at, content_hash). Altering any field or posting changes
the content hash; removing an entry leaves a gap in `seq` and a `prev_hash` that no longer matches.
Chains are per institution, so institutions never wait on each other's tip.
"""

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.kit.clock import as_utc
from app.ledger.types import Posting

GENESIS_HASH = "0" * 64


def content_hash(
    institution_id: UUID,
    idempotency_key: str,
    kind: str,
    memo: str | None,
    postings: Iterable[Posting],
) -> str:
    canonical = json.dumps(
        [
            str(institution_id),
            idempotency_key,
            kind,
            memo,
            [[str(p.account_id), p.amount_fen] for p in postings],
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _microseconds(moment: datetime) -> int:
    # Exact on both databases: both keep microseconds, and an integer needs no text format.
    return (as_utc(moment) - _EPOCH) // timedelta(microseconds=1)


def chain_hash(prev_hash: str, seq: int, posted_at: datetime, content: str) -> str:
    material = f"{prev_hash}|{seq}|{_microseconds(posted_at)}|{content}"
    return hashlib.sha256(material.encode()).hexdigest()
