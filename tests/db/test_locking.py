"""A locking read returns the row as it is in the database, not the copy the session held before."""

from sqlalchemy import select, update

from app.db.unit import Database
from app.models import Institution
from tests.factories import make_institution, make_jurisdiction


async def _changed_behind_the_session(engine, read_locked):
    """The alert level a locking read sees after the row changed behind the session's back (as it
    does when the lock waited for another transaction's commit)."""
    institution = await make_institution(engine, await make_jurisdiction(engine))

    async def work(session):
        held = await session.get_one(Institution, institution.id)
        assert held.alert_level == "GREEN"
        connection = await session.connection()
        await connection.execute(
            update(Institution).where(Institution.id == institution.id).values(alert_level="FROZEN")
        )
        locked = await read_locked(session, institution.id)
        assert locked is held  # one object per row in a session, now with the locked values
        return locked.alert_level

    return await Database(engine).run(work)


async def test_select_for_update_reloads_the_row(engine):
    async def read_locked(session, institution_id):
        return await session.scalar(
            select(Institution).where(Institution.id == institution_id).with_for_update()
        )

    assert await _changed_behind_the_session(engine, read_locked) == "FROZEN"


async def test_get_with_for_update_reloads_the_row(engine):
    async def read_locked(session, institution_id):
        return await session.get(Institution, institution_id, with_for_update=True)

    assert await _changed_behind_the_session(engine, read_locked) == "FROZEN"


async def test_a_plain_read_keeps_the_sessions_copy(engine):
    """Only locking reads reload: a plain read of a row the session holds costs no refresh."""

    async def read_plain(session, institution_id):
        return await session.scalar(select(Institution).where(Institution.id == institution_id))

    assert await _changed_behind_the_session(engine, read_plain) == "GREEN"
