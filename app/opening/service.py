"""Importing opening balances (存量, DOMAIN.md rule 4): money students paid an institution before it
was onboarded, still unconsumed, brought under supervision as `active` enrollments whose money is
credited by one `opening_balance` journal entry each (escrow cash debited, the enrollment's prepaid
account credited), so that U, the balance view, lessons, payouts and refunds treat it exactly as a
paid enrollment.

The money must really be in the escrow account: the file's total must equal the opening balance of
the escrow account's first statement, less what the ledger held before that statement's day and
what earlier imports brought in. Anything else refuses the whole import, saying by how much.

All or nothing: one transaction under the institution's ledger lock, which also serialises two
imports of one institution (and the payments crediting it meanwhile). The file's SHA-256 is kept,
unique per institution: the same file again changes nothing.

Not applied to opening balances, by design: the prepay cap and the renewal window (they govern new
payments; money already paid is what it is: rows above the cap are reported as warnings), the
course's dates and "not before today" (a 存量 enrollment may have begun long ago), the hold-back
(it is taken of receipts, and this money was received before onboarding) and the institution's
alert level (existing money is supervised whatever the institution's state).
"""

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from uuid import UUID

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.engine import evaluate
from app.audit.service import record
from app.auth.principal import Principal
from app.auth.service import issue_key
from app.balances.service import profile_of
from app.enrollments.identity import student_id
from app.enrollments.service import ORDER_NO_ALPHABET
from app.kit.clock import SHANGHAI
from app.kit.errors import Conflict, NotFound, Unprocessable
from app.kit.money import lessons_amount, yuan
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.ledger.errors import LedgerError
from app.ledger.types import EntryDraft
from app.models import Course, Enrollment, Institution, OpeningImport, ReconciliationRun
from app.models.api_key import Role
from app.models.enrollment import EnrollmentStatus
from app.models.reconciliation import BreakType, RunStatus
from app.opening.csvfile import OpeningFile, OpeningRow, RowProblem, read
from app.reconciliation import breaks

ENTRY_KIND = "opening_balance"
ACTOR = "cli:import-opening-balances"
ORDER_PREFIX = "OB"  # an opening balance's order number: no bank transfer ever quotes it


class InstitutionNotFound(NotFound):
    code = "institution_not_found"
    title = "Institution not found"


class NoFirstStatement(Conflict):
    code = "no_first_statement"
    title = "No statement of the escrow account yet"


class StatementDisagrees(Unprocessable):
    code = "opening_total_disagrees"
    title = "Opening balances disagree with the escrow account's first statement"


class RowsRefused(Unprocessable):
    code = "opening_rows_refused"
    title = "Opening-balance rows refused"


@dataclass(frozen=True, slots=True)
class StatementCheck:
    """The escrow account's first statement and what it leaves for opening balances."""

    run_id: UUID
    statement_date: str
    opening_fen: int  # the statement's opening balance
    ledger_before_fen: int  # the ledger's escrow cash before that statement's day
    imported_before_fen: int  # what earlier opening-balance imports brought in
    file_total_fen: int

    @property
    def expected_fen(self) -> int:
        return self.opening_fen - self.ledger_before_fen - self.imported_before_fen

    @property
    def difference_fen(self) -> int:
        """The file's total less what the statement leaves: 0 when they agree."""
        return self.file_total_fen - self.expected_fen

    def describe(self) -> str:
        return (
            f"the first statement ({self.statement_date}) opens with {yuan(self.opening_fen)} 元; "
            f"the ledger held {yuan(self.ledger_before_fen)} 元 before that day and earlier "
            f"imports brought {yuan(self.imported_before_fen)} 元, which leaves "
            f"{_signed_yuan(self.expected_fen)} 元 for opening balances; the file totals "
            f"{yuan(self.file_total_fen)} 元"
        )


@dataclass(slots=True)
class Imported:
    row: int
    enrollment_id: UUID
    order_no: str
    student_name: str
    parent_key: str


@dataclass(slots=True)
class ImportOutcome:
    """What an import did, or (dry run) would do."""

    institution_id: UUID
    file_sha256: str
    rows: int
    total_fen: int
    warnings: list[RowProblem]
    check: StatementCheck | None = None
    import_id: UUID | None = None
    dry_run: bool = False
    # The same file was imported before (`import_id`): nothing was written this time.
    replayed: bool = False
    enrollments: list[Imported] = field(default_factory=list)


def _signed_yuan(fen: int) -> str:
    return yuan(fen) if fen >= 0 else "-" + yuan(-fen)


def _new_order_no() -> str:
    return ORDER_PREFIX + "".join(secrets.choice(ORDER_NO_ALPHABET) for _ in range(30))


async def import_opening_balances(
    session: AsyncSession,
    secret: str,
    institution_id: UUID,
    data: bytes,
    file_name: str,
    now: datetime,
    *,
    dry_run: bool = False,
    actor: Principal | str = ACTOR,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportOutcome:
    """Check the file and, unless `dry_run`, import it whole; raise why not (RowsRefused with every
    refused row, StatementDisagrees with the figures). `actor` is who imports (the command, or the
    operator's principal through the API); `progress` is told the rows written so far
    and of how many. See the module's doc."""
    sha256 = hashlib.sha256(data).hexdigest()
    parsed = read(data)  # before the lock: the file alone needs no database
    institution = await session.get(Institution, institution_id)
    if institution is None:
        raise InstitutionNotFound(f"no institution {institution_id}")
    connection = await session.connection()
    await ledger.lock(connection, institution_id)
    earlier = await session.scalar(
        select(OpeningImport).where(
            OpeningImport.institution_id == institution_id, OpeningImport.file_sha256 == sha256
        )
    )
    if earlier is not None:
        return ImportOutcome(
            institution_id,
            sha256,
            earlier.rows,
            earlier.total_fen,
            [],
            import_id=earlier.id,
            dry_run=dry_run,
            replayed=True,
        )

    problems = [*parsed.problems, *await _course_problems(session, institution_id, parsed)]
    profile = await profile_of(session, institution)
    warnings = sorted(
        [
            *(
                warning
                for row in parsed.rows
                for warning in _above_cap(
                    row,
                    profile.max_prepaid_lessons,
                    profile.max_prepaid_amount_fen,
                    profile.max_prepaid_months,
                )
            ),
            *_repeated(parsed.rows),
        ],
        key=lambda warning: warning.row,
    )
    if problems:
        refused = sorted({problem.row for problem in problems})
        raise RowsRefused(
            f"{len(refused)} row(s) refused, nothing imported: "
            + "; ".join(f"row {p.row} {p.column}: {p.reason}" for p in problems[:5])
            + ("; ..." if len(problems) > 5 else ""),
            problems=sorted(problems, key=lambda p: p.row),
            warnings=warnings,
        )
    check = await _statement_check(session, institution, parsed.total_fen)
    if check.difference_fen != 0:
        more_or_less = "more" if check.difference_fen > 0 else "less"
        raise StatementDisagrees(
            f"the file totals {yuan(abs(check.difference_fen))} 元 {more_or_less} than the escrow "
            f"account's first statement allows: {check.describe()}",
            difference_fen=check.difference_fen,
            check=check,
            warnings=warnings,
        )
    outcome = ImportOutcome(
        institution_id,
        sha256,
        len(parsed.rows),
        parsed.total_fen,
        warnings,
        check=check,
        dry_run=dry_run,
    )
    if dry_run:
        return outcome
    outcome.import_id = uuid.uuid4()
    by = actor if isinstance(actor, str) else actor.identity
    outcome.enrollments = await _write(
        session, secret, institution_id, parsed.rows, sha256, now, progress
    )
    session.add(
        OpeningImport(
            institution_id=institution_id,
            id=outcome.import_id,
            file_sha256=sha256,
            file_name=file_name[:255],
            rows=len(parsed.rows),
            total_fen=parsed.total_fen,
            statement_run_id=check.run_id,
            statement_opening_fen=check.opening_fen,
            imported_by=by[:100],
            created_at=now,
        )
    )
    await _close_explained_break(session, institution_id, check, outcome.import_id, now, by)
    # U and the ledger's balance grew alike; a floor set as a share of U may not be met any more.
    await evaluate(session, institution_id, now, cause="opening balances imported", actor=by)
    await record(
        session,
        "opening_balances.import",
        actor=actor,
        institution_id=institution_id,
        object_type="opening_import",
        object_id=outcome.import_id,
        details={
            "file_name": file_name,
            "file_sha256": sha256,
            "rows": len(parsed.rows),
            "total_fen": parsed.total_fen,
            "statement_run_id": str(check.run_id),
            "statement_opening_fen": check.opening_fen,
            "rows_above_cap": sorted({warning.row for warning in warnings}),
        },
    )
    await session.flush()
    return outcome


async def _close_explained_break(
    session: AsyncSession,
    institution_id: UUID,
    check: StatementCheck,
    import_id: UUID,
    now: datetime,
    by: str,
) -> None:
    """Every statement read before the import found the bank holding more than the ledger: the
    opening balances, not yet imported. Their balance_mismatch breaks are closed once the imports
    account for exactly that difference; a break of any other difference stays open."""
    explained = check.opening_fen - check.ledger_before_fen
    found = await breaks.open_breaks(session, institution_id, types=[BreakType.balance_mismatch])
    await breaks.close(
        session,
        [
            each
            for each in found
            if each.amount_fen is not None
            and each.expected_fen is not None
            and each.amount_fen - each.expected_fen == explained
        ],
        by=by,
        note=f"the {yuan(explained)} 元 the ledger lacked are the opening balances of import "
        f"{import_id}",
        now=now,
    )


async def _course_problems(
    session: AsyncSession, institution_id: UUID, parsed: OpeningFile
) -> list[RowProblem]:
    wanted = {row.course_id for row in parsed.rows}
    found = set(
        (
            await session.scalars(
                select(Course.id).where(
                    Course.institution_id == institution_id, Course.id.in_(wanted)
                )
            )
        ).all()
        if wanted
        else ()
    )
    return [
        RowProblem(row.row, "course_id", f"no course {row.course_id} of this institution")
        for row in parsed.rows
        if row.course_id not in found
    ]


def _repeated(rows: list[OpeningRow]) -> list[RowProblem]:
    """Rows of a student and course another row has already: imported (a student may hold two
    packages of a course), reported in case the export repeated a line."""
    first: dict[tuple[str, UUID], int] = {}
    warnings = []
    for row in rows:
        seen = first.setdefault((row.student_id_number, row.course_id), row.row)
        if seen != row.row:
            warnings.append(
                RowProblem(
                    row.row, "student_id_number", f"the same student and course as row {seen}"
                )
            )
    return warnings


def _above_cap(
    row: OpeningRow, max_lessons: int, max_amount_fen: int, max_months: int
) -> list[RowProblem]:
    """What a row holds beyond the prepay cap: imported all the same (the money was paid before
    onboarding), reported so that the regulator knows."""
    warnings = []
    if row.lessons > max_lessons:
        warnings.append(
            RowProblem(
                row.row,
                "lessons_remaining",
                f"{row.lessons} lessons, above the cap of {max_lessons}",
            )
        )
    if row.amount_fen > max_amount_fen:
        warnings.append(
            RowProblem(
                row.row,
                "unconsumed_yuan",
                f"{yuan(row.amount_fen)} 元, above the cap of {yuan(max_amount_fen)} 元",
            )
        )
    if row.valid_until > row.valid_from + relativedelta(months=max_months):
        warnings.append(
            RowProblem(
                row.row,
                "valid_until",
                f"{row.valid_from} to {row.valid_until} spans more than {max_months} months",
            )
        )
    return warnings


async def _statement_check(
    session: AsyncSession, institution: Institution, file_total_fen: int
) -> StatementCheck:
    first = await session.scalar(
        select(ReconciliationRun)
        .where(
            ReconciliationRun.institution_id == institution.id,
            ReconciliationRun.account_no == institution.escrow_account_no,
            ReconciliationRun.status.not_in([RunStatus.missing, RunStatus.superseded]),
        )
        .order_by(ReconciliationRun.statement_date, ReconciliationRun.created_at)
        .limit(1)
    )
    if first is None:
        raise NoFirstStatement(
            f"the bank has sent no statement of escrow account {institution.escrow_account_no} "
            "yet: the opening balances are checked against its first one (let the bank send it, "
            "or hand it over with `prepaid-guard reconcile FILE --bank SLUG`)"
        )
    connection = await session.connection()
    books = await institution_books(connection, institution.id)
    day_starts = datetime.combine(first.statement_date, time(0), SHANGHAI)
    before = await ledger.balances_as_of(
        connection, institution.id, day_starts - timedelta(microseconds=1)
    )
    imported = await session.scalar(
        select(func.coalesce(func.sum(OpeningImport.total_fen), 0)).where(
            OpeningImport.institution_id == institution.id
        )
    )
    return StatementCheck(
        run_id=first.id,
        statement_date=first.statement_date.isoformat(),
        opening_fen=first.opening_fen,
        ledger_before_fen=before.get(books.escrow_cash.id, 0),
        imported_before_fen=int(imported or 0),
        file_total_fen=file_total_fen,
    )


async def _write(
    session: AsyncSession,
    secret: str,
    institution_id: UUID,
    rows: list[OpeningRow],
    sha256: str,
    now: datetime,
    progress: Callable[[int, int], None],
) -> list[Imported]:
    """The enrollments, their prepaid accounts, their entries and their parents' keys."""
    enrollments = [_enrollment(secret, institution_id, row, now) for row in rows]
    session.add_all(enrollments)
    await session.flush()
    connection = await session.connection()
    books = await institution_books(connection, institution_id)
    prepaid = await ledger.open_accounts(
        connection, institution_id, [ledger.prepaid_spec(e.id) for e in enrollments]
    )
    imported: list[Imported] = []
    for start in range(0, len(rows), ledger.MAX_ENTRIES_PER_CALL):
        batch = range(start, min(start + ledger.MAX_ENTRIES_PER_CALL, len(rows)))
        results = await ledger.post_many(
            connection,
            institution_id,
            [
                EntryDraft.transfer(
                    f"opening:{sha256[:32]}:{rows[i].row}",
                    ENTRY_KIND,
                    books.escrow_cash.id,
                    prepaid[i].id,
                    rows[i].amount_fen,
                    memo=f"opening balance, order {enrollments[i].order_no}, file row {rows[i].row}",
                )
                for i in batch
            ],
        )
        for result in results:
            if isinstance(result, LedgerError):
                raise result
        for i in batch:
            _, parent_key = await issue_key(
                session,
                secret,
                role=Role.parent,
                name=f"parent of {enrollments[i].order_no}",
                enrollment_id=enrollments[i].id,
            )
            imported.append(
                Imported(
                    rows[i].row,
                    enrollments[i].id,
                    enrollments[i].order_no,
                    rows[i].student_name,
                    parent_key,
                )
            )
            progress(len(imported), len(rows))
    return imported


def _enrollment(secret: str, institution_id: UUID, row: OpeningRow, now: datetime) -> Enrollment:
    student = student_id(secret, row.student_id_number)
    return Enrollment(
        institution_id=institution_id,
        id=uuid.uuid4(),
        course_id=row.course_id,
        order_no=_new_order_no(),
        student_name=row.student_name,
        student_id_hash=student.hash,
        student_id_masked=student.masked,
        payer_name=row.payer_name,
        payer_phone=row.payer_phone,
        lessons=row.lessons,
        lesson_price_fen=lessons_amount(row.amount_fen, row.lessons, 1, 1),
        amount_fen=row.amount_fen,
        loan_funded=False,
        status=EnrollmentStatus.active,
        paid_fen=row.amount_fen,
        lessons_confirmed=0,
        lessons_pending=0,
        lessons_disputed=0,
        confirmed_fen=0,
        pending_fen=0,
        disputed_fen=0,
        refunded_fen=0,
        # Never awaiting payment, so never expired; kept for the column's sake.
        expires_at=now,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        # No payment at this bank: reconciliation looks for no statement line of it (it lists
        # enrollments by paid_at) and no lesson is refused as given before it.
        paid_at=None,
        payment_payer_name=row.payer_name,
        payment_payer_account_no=row.payer_account_no,
        created_at=now,
        updated_at=now,
    )
