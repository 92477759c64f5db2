"""The only clock. Everything that needs "now" asks here, so jobs and tests can move time."""

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator

SHANGHAI = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Aware UTC, whatever the driver returned (SQLite gives naive UTC, PostgreSQL aware)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# A moment in a response: always with its offset, whatever the database gave back.
Timestamp = Annotated[datetime, AfterValidator(as_utc)]
