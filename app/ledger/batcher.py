"""Group commit: concurrent posts to one institution share one transaction.

A busy institution is one hot lock (its ledger head), and a lock held across a commit caps how
many transactions per second can pass through it. Rather than queue transactions on that lock, the
batcher queues entries in the process: while one transaction of an institution is in flight, new
entries for it wait in memory and go together in the next one, through `post_many` (one lock, a fixed
number of statements, one commit). Each entry is still accepted or refused on its own, and a caller
gets its own result. Institutions never share a batch, so every transaction stays on one shard.

Use it for writes that are ledger entries alone; a request that also writes its own rows posts with
`service.post` inside its own transaction instead.
"""

import asyncio
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.transaction import run_in_transaction
from app.ledger import service
from app.ledger.errors import LedgerError
from app.ledger.types import EntryDraft, PostedEntry

Waiting = tuple[EntryDraft, "asyncio.Future[service.Result]"]


class LedgerBatcher:
    def __init__(self, engine: AsyncEngine, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = min(max_batch, service.MAX_ENTRIES_PER_CALL)
        self._queues: dict[UUID, list[Waiting]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def post(self, institution_id: UUID, draft: EntryDraft) -> PostedEntry:
        future: asyncio.Future[service.Result] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(institution_id)
        if queue is None:
            queue = self._queues[institution_id] = []
            drain = asyncio.create_task(self._drain(institution_id, queue))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        queue.append((draft, future))
        result = await future
        if isinstance(result, LedgerError):
            raise result
        return result

    async def _drain(self, institution_id: UUID, queue: list[Waiting]) -> None:
        try:
            while queue:
                batch, queue[:] = queue[: self._max_batch], queue[self._max_batch :]
                drafts = [draft for draft, _ in batch]
                try:
                    results = await run_in_transaction(
                        self._engine, lambda c: service.post_many(c, institution_id, drafts)
                    )
                except Exception as error:  # the whole transaction failed: every caller hears why
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
        finally:
            # No await between the last empty check and this: a new caller starts a new drain.
            del self._queues[institution_id]
