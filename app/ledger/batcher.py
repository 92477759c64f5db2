"""Group commit: concurrent posts to one institution share one transaction.

A busy institution is one hot lock (its ledger head), and a lock held across a commit caps how many
transactions per second can pass through it. Rather than queue transactions on that lock, the
batcher queues entries in the process: while one transaction of an institution is in flight, new
entries for it wait in memory and go together in the next one, through `post_many` (one lock, a fixed
number of statements, one commit). Each entry is still accepted or refused on its own, and each
caller gets its own results. Institutions never share a batch, so every transaction stays on one
shard.

Use it for writes that are ledger entries alone; a request that also writes its own rows posts with
`service.post` inside its own transaction instead.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.transaction import run_in_transaction
from app.ledger import service
from app.ledger.errors import LedgerError
from app.ledger.types import EntryDraft, PostedEntry


@dataclass
class _Request:
    drafts: Sequence[EntryDraft]
    done: asyncio.Future[list[service.Result]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class LedgerBatcher:
    def __init__(
        self, engine: AsyncEngine, max_entries: int = service.MAX_ENTRIES_PER_CALL
    ) -> None:
        self._engine = engine
        self._max_entries = min(max_entries, service.MAX_ENTRIES_PER_CALL)
        self._queues: dict[UUID, list[_Request]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def post(self, institution_id: UUID, draft: EntryDraft) -> PostedEntry:
        """One entry, or raise why it was refused."""
        [result] = await self.post_many(institution_id, [draft])
        if isinstance(result, LedgerError):
            raise result
        return result

    async def post_many(
        self, institution_id: UUID, drafts: Sequence[EntryDraft]
    ) -> list[service.Result]:
        """Entries of one institution, each accepted or refused on its own, as `service.post_many`;
        they always go in one transaction together, possibly with other callers' entries."""
        if len(drafts) > self._max_entries:
            return await run_in_transaction(
                self._engine, lambda c: service.post_many(c, institution_id, drafts)
            )
        request = _Request(drafts)
        queue = self._queues.get(institution_id)
        if queue is None:
            queue = self._queues[institution_id] = []
            drain = asyncio.create_task(self._drain(institution_id, queue))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        queue.append(request)
        return await request.done

    def _take(self, queue: list[_Request]) -> list[_Request]:
        taken, size = 0, 0
        while taken < len(queue) and size + len(queue[taken].drafts) <= self._max_entries:
            size += len(queue[taken].drafts)
            taken += 1
        batch = queue[:taken]
        del queue[:taken]
        return batch

    async def _post(self, institution_id: UUID, batch: list[_Request]) -> list[service.Result]:
        drafts = [draft for request in batch for draft in request.drafts]
        return await run_in_transaction(
            self._engine, lambda connection: service.post_many(connection, institution_id, drafts)
        )

    async def _drain(self, institution_id: UUID, queue: list[_Request]) -> None:
        try:
            while queue:
                batch = self._take(queue)
                try:
                    results = await self._post(institution_id, batch)
                except Exception as error:  # the whole transaction failed: every caller hears why
                    for request in batch:
                        if not request.done.done():
                            request.done.set_exception(error)
                    continue
                start = 0
                for request in batch:
                    end = start + len(request.drafts)
                    if not request.done.done():
                        request.done.set_result(results[start:end])
                    start = end
        finally:
            # No await between the last empty check and this: a new caller starts a new drain.
            del self._queues[institution_id]
