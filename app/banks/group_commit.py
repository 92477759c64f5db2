"""Group commit of the inbox: the payment messages that concurrent requests of this process want
stored are written together, in one transaction and one multi-row insert, and each request is
woken once that commit is durable, to give the bank its success reply.

Why: a commit costs a round trip and a disk flush, and a request through the whole stack costs
more CPU than the insert itself. Under load, while one batch commits the next one gathers, so the
batches grow with the load; when the service is quiet, a message waits at most `max_wait` for
company. Nothing is acknowledged before its batch committed: a failed batch fails every request
in it (the bank gets no success reply and sends again).
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from app.banks.inbox import Pending, StoreOutcome, store_batch
from app.db.transaction import run_in_transaction
from app.kit.crashpoints import crash_point

log = logging.getLogger(__name__)

MAX_BATCH = 256  # messages in one insert
MAX_WAIT_SECONDS = 0.002  # how long a message waits for others when the queue is short


@dataclass(slots=True)
class _Waiting:
    pending: Pending
    done: asyncio.Future[StoreOutcome]


class InboxWriter:
    """Stores payment messages by group commit, on `engine`; `committed` is called after each
    batch that stored anything (it wakes the crediting worker)."""

    def __init__(
        self,
        engine: AsyncEngine,
        committed: Callable[[], None],
        *,
        max_batch: int = MAX_BATCH,
        max_wait: float = MAX_WAIT_SECONDS,
    ) -> None:
        self.engine = engine
        self.committed = committed
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: list[_Waiting] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def store(self, pending: Pending) -> StoreOutcome:
        """Store the message with whatever else is waiting; return once that is committed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="inbox-group-commit")
        waiting = _Waiting(pending, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._ready.set()
        return await waiting.done

    async def close(self) -> None:
        """Stop writing; a request still waiting is failed (its bank gets no success reply)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for waiting in self._queue:
            if not waiting.done.done():
                waiting.done.set_exception(RuntimeError("the inbox is shutting down"))
        self._queue.clear()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if len(self._queue) < self.max_batch:
                await asyncio.sleep(self.max_wait)
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            if not self._queue:
                self._ready.clear()
            await self._write(batch)

    async def _write(self, batch: list[_Waiting]) -> None:
        pendings = [waiting.pending for waiting in batch]
        try:
            outcomes = await run_in_transaction(
                self.engine, lambda connection: store_batch(connection, pendings)
            )
        except BaseException as error:
            failure = error if isinstance(error, Exception) else RuntimeError("inbox shut down")
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(failure)
            if failure is not error:
                raise  # cancelled: the writer is closing
            log.exception("a batch of %d bank messages could not be stored", len(batch))
            return
        crash_point("inbox.stored")  # tests: a process dying between the store and the credit
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if not waiting.done.done():  # its request may have been cancelled meanwhile
                waiting.done.set_result(outcome)
        self.committed()
