"""Group commit: what concurrent requests of this process want written is written together, in one
transaction, and each request is woken with its own outcome once that commit is durable.

Why: a commit costs a round trip and a disk flush, and a request through the whole stack costs
more CPU than its statements. Under load, while one group commits the next gathers, so the groups
grow with the load; when the service is quiet, an item waits at most `max_wait` for company.
Nothing is answered before its group committed.

A group may be confined to the items of one `group_of` key (the institution, when the deployment
is sharded by institution: a transaction then stays on one shard); `in_flight` groups may be
written at once (groups of different institutions then do not wait for each other). When a group
of several fails, `one_by_one` writes each of its items again, in order, in a transaction of its
own, so that one bad item fails only its own request; without it the whole group fails (the bank inbox: its
banks send again).
"""

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.transaction import run_in_transaction

log = logging.getLogger(__name__)

Item = TypeVar("Item")  # what a request hands in
Out = TypeVar("Out")  # its outcome

Write = Callable[[AsyncConnection, list[Item]], Awaitable[list[Out]]]


@dataclass(slots=True)
class Waiting(Generic[Item, Out]):
    item: Item
    done: asyncio.Future[Out]


def take_group(
    queue: list[Item], most: int, group_of: Callable[[Item], Hashable] | None
) -> tuple[list[Item], list[Item]]:
    """The next group (up to `most` items from the head of `queue`, in order, all of the head's
    `group_of` key when one is given) and what stays queued, in order."""
    if group_of is None:
        return queue[:most], queue[most:]
    key = group_of(queue[0])
    group: list[Item] = []
    rest: list[Item] = []
    for item in queue:
        if len(group) < most and group_of(item) == key:
            group.append(item)
        else:
            rest.append(item)
    return group, rest


class GroupCommit(Generic[Item, Out]):
    """Writes items by group commit on `engine`: `write(connection, items)` returns one outcome per
    item, in order, inside the transaction; `committed` is called after each group committed."""

    def __init__(
        self,
        engine: AsyncEngine,
        write: Write[Item, Out],
        *,
        name: str,
        max_batch: int,
        max_wait: float,
        committed: Callable[[], None] | None = None,
        group_of: Callable[[Item], Hashable] | None = None,
        in_flight: int = 1,
        one_by_one: bool = False,
    ) -> None:
        self.engine = engine
        self.write = write
        self.name = name
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.committed = committed
        self.group_of = group_of
        self.one_by_one = one_by_one
        self._queue: list[Waiting[Item, Out]] = []
        self._ready = asyncio.Event()
        self._slots = asyncio.Semaphore(in_flight)
        self._task: asyncio.Task[None] | None = None
        self._writing: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Out:
        """Write `item` with whatever else is waiting; return its outcome once that committed."""
        if self._task is None or self._task.done():
            # A context of its own: not the first request's (its request id in the logs, its
            # caller as the audit trail's actor).
            self._task = asyncio.create_task(
                self._run(), name=self.name, context=contextvars.Context()
            )
        waiting: Waiting[Item, Out] = Waiting(item, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._ready.set()
        return await waiting.done

    async def close(self) -> None:
        """Stop writing; a request still waiting is failed (nothing of it was answered)."""
        tasks = [task for task in (self._task, *self._writing) if task is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiting in self._queue:
            if not waiting.done.done():
                waiting.done.set_exception(RuntimeError(f"{self.name} is shutting down"))
        self._queue.clear()

    def _group_key(self, waiting: Waiting[Item, Out]) -> Hashable:
        assert self.group_of is not None
        return self.group_of(waiting.item)

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            await self._slots.acquire()
            if len(self._queue) < self.max_batch:
                await asyncio.sleep(self.max_wait)
            if not self._queue:  # a closing writer failed them meanwhile
                self._slots.release()
                self._ready.clear()
                continue
            group, self._queue = take_group(
                self._queue, self.max_batch, self._group_key if self.group_of else None
            )
            if not self._queue:
                self._ready.clear()
            task = asyncio.create_task(self._write(group), name=f"{self.name}-write")
            self._writing.add(task)
            task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing.discard(task)
        self._slots.release()

    async def _write(self, group: list[Waiting[Item, Out]]) -> None:
        items = [waiting.item for waiting in group]
        try:
            outcomes = await run_in_transaction(
                self.engine, lambda connection: self.write(connection, items)
            )
        except asyncio.CancelledError:
            _fail(group, RuntimeError(f"{self.name} is shutting down"))
            raise
        except Exception as error:
            if self.one_by_one and len(group) > 1:
                log.warning("%s: a group of %d failed; writing each alone", self.name, len(group))
                # In order, one at a time: a later item of the same row sees the earlier ones, as
                # in the group, and a group of hundreds does not ask the pool for as many
                # connections at once.
                for waiting in group:
                    await self._write([waiting])
                return
            log.exception("%s: a group of %d could not be written", self.name, len(group))
            _fail(group, error)
            return
        if self.committed is not None:
            self.committed()
        for waiting, outcome in zip(group, outcomes, strict=True):
            if not waiting.done.done():  # its request may have been cancelled meanwhile
                waiting.done.set_result(outcome)


def _fail(group: list[Waiting[Item, Out]], error: Exception) -> None:
    for waiting in group:
        if not waiting.done.done():
            waiting.done.set_exception(error)
