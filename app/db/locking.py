"""A row read FOR UPDATE is the row as locked.

The ORM's identity map hands back the object it already holds for a primary key, even when a later
`SELECT ... FOR UPDATE` waited for another transaction and returned newer values: the code would
decide on the row as it was before the wait (a refund still `requested` that the other transaction
has just rejected). Every locking read of a unit of work therefore reloads its rows, whether it is a
`select(...).with_for_update()` or a `session.get(..., with_for_update=True)`, so no call site can
forget to.
"""

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session


class LockingSession(Session):
    """The session of a unit of work (`app.db.unit`): its locking reads populate existing objects."""


@event.listens_for(LockingSession, "do_orm_execute")
def _reload_locked_rows(state: ORMExecuteState) -> None:
    if state.is_select and state.statement._for_update_arg is not None:  # type: ignore[attr-defined]
        state.update_execution_options(populate_existing=True)
