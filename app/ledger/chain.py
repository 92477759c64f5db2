"""Tamper evidence: each entry's digest, chained per institution.

`content_hash` covers what the entry says (institution, key, kind, memo, postings in order);
`hash` = SHA-256(previous hash, seq, posted_at, content_hash). Altering any field or posting changes
the content hash; removing an entry leaves a gap in `seq` and a `prev_hash` that no longer matches.
The actor and address of an entry, when recorded, are chained too (see `chain_hash`).
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


def chain_hash(
    prev_hash: str,
    seq: int,
    posted_at: datetime,
    content: str,
    actor_role: str | None = None,
    actor_id: str | None = None,
    address: str | None = None,
) -> str:
    """The link of an entry. Who posted it and from where are chained when known, not digested in
    `content`: a replay by another actor (a result the callback and the poll both bring) is still
    the same content. An entry with none of them hashes as entries did before the audit trail."""
    material = f"{prev_hash}|{seq}|{_microseconds(posted_at)}|{content}"
    if (actor_role, actor_id, address) != (None, None, None):
        material += "|" + json.dumps([actor_role, actor_id, address], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()
