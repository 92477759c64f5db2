"""Group commit of the inbox: the payment messages that concurrent requests of this process want
stored are written together, in one transaction and one multi-row insert, and each request is
woken once that commit is durable, to give the bank its success reply.

Why: a commit costs a round trip and a disk flush, and a request through the whole stack costs
more CPU than the insert itself. Under load, while one batch commits the next one gathers, so the
batches grow with the load; when the service is quiet, a message waits at most `max_wait` for
company. Nothing is acknowledged before its batch committed: a failed batch fails every request
in it (the bank gets no success reply and sends again). The writing itself is app.db.group_commit's,
shared with the lessons' single records.
"""

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from app.banks.inbox import Pending, StoreOutcome, store_batch
from app.db.group_commit import GroupCommit
from app.kit.crashpoints import crash_point

MAX_BATCH = 256  # messages in one insert
MAX_WAIT_SECONDS = 0.002  # how long a message waits for others when the queue is short


class InboxWriter(GroupCommit[Pending, StoreOutcome]):
    """Stores payment messages by group commit (app.db.group_commit), on `engine`; `committed` is
    called after each batch that stored anything (it wakes the crediting worker)."""

    def __init__(
        self,
        engine: AsyncEngine,
        committed: Callable[[], None],
        *,
        max_batch: int = MAX_BATCH,
        max_wait: float = MAX_WAIT_SECONDS,
    ) -> None:
        def stored() -> None:
            crash_point("inbox.stored")  # tests: a process dying between the store and the credit
            committed()

        super().__init__(
            engine,
            # Looked up at each call: tests measure the batches through the module's name.
            lambda connection, pendings: store_batch(connection, pendings),
            name="inbox-group-commit",
            max_batch=max_batch,
            max_wait=max_wait,
            committed=stored,
        )

    async def store(self, pending: Pending) -> StoreOutcome:
        """Store the message with whatever else is waiting; return once that is committed."""
        return await self.submit(pending)
