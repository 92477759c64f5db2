"""Single lesson records by group commit (app.db.group_commit): the records that concurrent
requests of this process make without an `Idempotency-Key` are written together, in one
transaction of `record_placed` (the enrollments of every institution in the group locked in one
statement in (institution, id) order, their keys read in one, one write), and each request is
answered with its own outcome, exactly as alone: a refusal is its own problem, a replayed key its earlier lesson.

A group holds any institutions' records (GROUP_COMMIT_SCOPE=database), or one institution's only
(`institution`: sharded by institution, a transaction stays on one shard). When a group's
transaction fails, each of its records is written again alone, so one bad record fails only its
own request. PostgreSQL only: on SQLite, the embedded default, a request records in a transaction
of its own (SQLite has one writer at a time anyway).
"""

from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import GroupCommitScope
from app.db.group_commit import GroupCommit
from app.kit.clock import utcnow
from app.kit.errors import DomainError
from app.lessons.schemas import LessonItem
from app.lessons.service import Outcome, Placed, Recorded, record_placed

MAX_BATCH = 256  # records in one transaction
MAX_WAIT_SECONDS = 0.001  # how long a record waits for others when the queue is short
IN_FLIGHT = 4  # groups written at once by one process (of different institutions, when confined)


def _institution(placed: Placed) -> UUID:
    return placed.institution_id


async def _record(connection: AsyncConnection, placed: list[Placed]) -> list[Outcome]:
    now: datetime = utcnow()
    return await record_placed(connection, placed, now)


class LessonWriter(GroupCommit[Placed, Outcome]):
    """This process's group commit of single lesson records, on `engine`."""

    def __init__(
        self,
        engine: AsyncEngine,
        scope: GroupCommitScope,
        *,
        max_batch: int = MAX_BATCH,
        max_wait: float = MAX_WAIT_SECONDS,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        super().__init__(
            engine,
            _record,
            name="lesson-group-commit",
            max_batch=max_batch,
            max_wait=max_wait,
            group_of=_institution if scope is GroupCommitScope.institution else None,
            in_flight=in_flight,
            one_by_one=True,
        )

    async def record(self, institution_id: UUID, item: LessonItem) -> Recorded:
        """Record `item` for the institution with whatever else is waiting; its refusal raised."""
        outcome = await self.submit(Placed(institution_id, item))
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome
