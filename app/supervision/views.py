"""Balance views as the regulator sees them: the figures of `app.balances` with the bank's report
and the alert level, now or as they stood at a past moment."""

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.engine import level_as_of
from app.auth.principal import Principal
from app.auth.scope import sees, sees_institution
from app.balances.schemas import BalanceView
from app.balances.service import (
    bank_reports,
    cached_jurisdiction,
    figures,
    figures_of,
    institution_and_figures,
    profile_of,
    profiles_of,
    remember_jurisdiction,
)
from app.institutions.errors import InstitutionNotFound
from app.institutions.repository import visible_institution
from app.kit.clock import SHANGHAI, utcnow
from app.models import Institution
from app.supervision.errors import AsOfInFuture, InvalidAsOf

AS_OF_DESCRIPTION = (
    "A past moment to see the view as it stood then, recomputed from the journal: ISO 8601 with "
    "its offset (`2026-03-01T18:00:00+08:00`), or a date (`2026-03-01`) meaning the end of that "
    "day in Asia/Shanghai (00:00 of the next, the cut-off of that day's bank statement). "
    "The bank's balance is then the closing balance "
    "of the latest statement whose day had ended by then, and the alert level the one the "
    "institution had then. A moment without an offset: `422 invalid_as_of`; one in the future "
    "(a date: one whose day has not ended): `422 as_of_in_future`. Payouts count by their status "
    "as it is now."
)


def parse_as_of(value: str | None, now: datetime) -> datetime | None:
    """`as_of` as an aware moment, or None for now; refused when it has no offset or is future."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1), time(0), SHANGHAI)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidAsOf(f"as_of {value!r} is neither an ISO 8601 moment nor a date") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidAsOf(f"as_of {value!r} has no offset: say +08:00 or Z")
    if moment > now:
        raise AsOfInFuture(f"as_of {value!r} is in the future; ask without it for now")
    return moment


async def _as_of(
    as_of: Annotated[str | None, Query(max_length=40, description=AS_OF_DESCRIPTION)] = None,
) -> datetime | None:
    return parse_as_of(as_of, utcnow())


# An endpoint parameter: `as_of: AsOf` adds the query parameter, parsed and checked.
AsOf = Annotated[datetime | None, Depends(_as_of)]


async def balance_view_now(session: AsyncSession, institution: Institution) -> BalanceView:
    """One institution's view now, its figures read in one statement (`balances.service.figures`,
    held equal to the bulk reading by a property test)."""
    found = await figures(session, institution, await profile_of(session, institution), utcnow())
    return BalanceView.of(
        institution,
        found,
        bank_balance_as_of=institution.bank_balance_as_of,
        alert_level=institution.alert_level,
    )


async def visible_balance_view_now(
    session: AsyncSession, caller: Principal, institution_id: UUID
) -> BalanceView:
    """The view now of an institution the caller sees (404 otherwise), in one statement once this
    process knows the institution's jurisdiction: who may see it is decided from that before any
    statement, and the institution's row comes with its figures. The first time, the row is read
    first (`visible_institution`), then the figures."""
    code = cached_jurisdiction(institution_id)
    if code is None:
        institution = await visible_institution(session, caller, institution_id)
        remember_jurisdiction(institution)
        return await balance_view_now(session, institution)
    if not sees(caller, institution_id, code):
        raise InstitutionNotFound(f"no institution {institution_id}")
    profile = (await profiles_of(session, {code}))[code]
    found = await institution_and_figures(session, institution_id, profile, utcnow())
    if found is None or not sees_institution(caller, found[0]):
        raise InstitutionNotFound(f"no institution {institution_id}")
    institution, now = found
    return BalanceView.of(
        institution,
        now,
        bank_balance_as_of=institution.bank_balance_as_of,
        alert_level=institution.alert_level,
    )


async def balance_views(
    session: AsyncSession, institutions: Sequence[Institution], as_of: datetime | None = None
) -> list[BalanceView]:
    """The balance view of each institution, in order: now, or as it stood at a past `as_of`.
    The figures of all of them come from one set of queries (`figures_of`)."""
    reports = await bank_reports(session, institutions, as_of)
    found = await figures_of(
        session, institutions, as_of or utcnow(), replay=as_of is not None, reports=reports
    )
    views = []
    for institution in institutions:
        level = (
            institution.alert_level
            if as_of is None
            else await level_as_of(session, institution.id, as_of)
        )
        views.append(
            BalanceView.of(
                institution,
                found[institution.id],
                bank_balance_as_of=reports[institution.id].as_of,
                alert_level=level,
            )
        )
    return views
