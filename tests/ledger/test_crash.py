"""A process that dies mid-transaction, after posting and before its commit, leaves no trace, and
the institution's lock is free again for the next writer."""

import asyncio
import sys
import textwrap

from tests.conftest import TEST_DATABASE_URL
from tests.ledger.conftest import balances, journal_size, open_books, payment, post

CRASHING_WRITER = textwrap.dedent("""
    import asyncio, os, sys, uuid
    from app.db.engine import create_engine
    from app.ledger import service as ledger
    from app.ledger.types import EntryDraft

    async def main():
        institution, cash, prepaid = (uuid.UUID(arg) for arg in sys.argv[2:5])
        engine = create_engine(sys.argv[1])
        async with engine.begin() as connection:
            await ledger.post(connection, institution,
                              EntryDraft.transfer("lost", "payment", cash, prepaid, 500))
            print("posted", flush=True)
            os._exit(9)  # the machine dies before the commit

    asyncio.run(main())
""")


async def test_crash_before_commit_leaves_nothing(engine):
    books = await open_books(engine)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_WRITER,
        TEST_DATABASE_URL,
        str(books.institution_id),
        str(books.cash.id),
        str(books.prepaid[0].id),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 9, stderr.decode()
    assert stdout.decode().strip() == "posted"

    assert await journal_size(engine, books.institution_id) == (0, 0)
    entry = await asyncio.wait_for(post(engine, books, payment("after", books, 7)), timeout=30)
    assert entry.seq == 1
    assert (await balances(engine, books))[books.cash.id] == 7
