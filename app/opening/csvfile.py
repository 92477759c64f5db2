"""The opening-balance file (存量导入): a CSV of the students who paid before the institution was
onboarded and still have lessons and money unconsumed. Pure: bytes in, rows and the problems of
each refused row out; the service checks what needs the database (the course, the statement).

UTF-8, with or without a BOM (Excel writes one). One heading row, in Chinese or English, columns
in any order (docs/opening-balances.md has an example):

| English             | 中文            | value                                                     |
|---------------------|-----------------|-----------------------------------------------------------|
| student_name        | 学生姓名        | 1 to 100 characters                                       |
| student_id_number   | 学生身份证号    | 18-character resident identity number, check verified     |
| payer_name          | 缴费人姓名      | 1 to 100 characters                                       |
| payer_phone         | 缴费人电话      | digits, spaces, dashes, an optional leading +             |
| payer_account_no    | 缴费人账号      | optional: the account a refund goes to, 6 to 40 digits    |
| course_id           | 课程编号        | an existing course of the institution (its id)            |
| lessons_remaining   | 剩余课时        | whole number, 1 to 10,000                                 |
| unconsumed_yuan     | 未消费金额(元)  | 元 with at most two decimals, above 0, at least 1 分 a lesson |
| valid_from          | 有效期起        | YYYY-MM-DD                                                |
| valid_until         | 有效期止        | YYYY-MM-DD, not before valid_from                         |
"""

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from app.enrollments.schemas import MAX_LESSONS
from app.kit.errors import Unprocessable
from app.kit.money import fen_from_yuan

# Each column: its English and Chinese headings. `payer_account_no` alone may be left out.
COLUMNS: dict[str, tuple[str, str]] = {
    "student_name": ("student_name", "学生姓名"),
    "student_id_number": ("student_id_number", "学生身份证号"),
    "payer_name": ("payer_name", "缴费人姓名"),
    "payer_phone": ("payer_phone", "缴费人电话"),
    "payer_account_no": ("payer_account_no", "缴费人账号"),
    "course_id": ("course_id", "课程编号"),
    "lessons_remaining": ("lessons_remaining", "剩余课时"),
    "unconsumed_yuan": ("unconsumed_yuan", "未消费金额(元)"),
    "valid_from": ("valid_from", "有效期起"),
    "valid_until": ("valid_until", "有效期止"),
}
OPTIONAL = frozenset({"payer_account_no"})
# Full-width parentheses, as a Chinese keyboard types them, read as ASCII ones.
_FULLWIDTH = str.maketrans("\uff08\uff09", "()")
_HEADINGS = {
    heading.translate(_FULLWIDTH): column
    for column, headings in COLUMNS.items()
    for heading in headings
}
MAX_NAME = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PHONE = re.compile(r"\+?[0-9][0-9 -]{4,18}")
_ACCOUNT = re.compile(r"[0-9]{6,40}")
_LESSONS = re.compile(r"[1-9][0-9]{0,4}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class OpeningFileInvalid(Unprocessable):
    """The file as a whole cannot be read: not UTF-8, no heading row, a column missing."""

    code = "opening_file_invalid"
    title = "Opening-balance file unreadable"


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why a row (numbered as a spreadsheet shows it: the heading is row 1) is refused, or, for a
    warning, what is unusual about it."""

    row: int
    column: str
    reason: str


@dataclass(frozen=True, slots=True)
class OpeningRow:
    row: int
    student_name: str
    student_id_number: str
    payer_name: str
    payer_phone: str
    payer_account_no: str | None
    course_id: UUID
    lessons: int
    amount_fen: int
    valid_from: date
    valid_until: date


@dataclass(frozen=True, slots=True)
class OpeningFile:
    rows: list[OpeningRow]
    problems: list[RowProblem]

    @property
    def total_fen(self) -> int:
        return sum(row.amount_fen for row in self.rows)


def unconsumed_fen(text: str) -> int:
    """An unconsumed amount in 元 ("1234.5") as fen, exactly: at most two decimals, above zero, no
    sign, no exponent. ValueError, saying why, for anything else."""
    try:
        fen = fen_from_yuan(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an amount in 元 with at most two decimals (e.g. 1234.50)"
        ) from None
    if fen == 0:
        raise ValueError(
            "the amount is zero: a student with nothing unconsumed has no opening balance"
        )
    return fen


def read(data: bytes) -> OpeningFile:
    """The rows of the file and the problems of those refused; OpeningFileInvalid when the file
    itself cannot be read."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise OpeningFileInvalid(
            f"the file is not UTF-8 (byte {error.start}); save it as CSV UTF-8"
        ) from None
    lines = csv.reader(io.StringIO(text, newline=""))
    header = next(lines, None)
    if header is None:
        raise OpeningFileInvalid("the file is empty: it needs a heading row and a row per student")
    columns = _columns(header)
    rows: list[OpeningRow] = []
    problems: list[RowProblem] = []
    for number, cells in enumerate(lines, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, as spreadsheets leave at the end
        if len(cells) != len(header):
            problems.append(
                RowProblem(number, "", f"{len(cells)} cells, the heading row has {len(header)}")
            )
            continue
        values = {column: cells[index].strip() for index, column in columns.items()}
        row, found = _row(number, values)
        problems.extend(found)
        if row is not None:
            rows.append(row)
    if not rows and not problems:
        raise OpeningFileInvalid("the file has a heading row but no student")
    return OpeningFile(rows, problems)


def _columns(header: list[str]) -> dict[int, str]:
    """Which column each cell of the heading row names."""
    columns: dict[int, str] = {}
    for index, heading in enumerate(header):
        key = heading.strip().translate(_FULLWIDTH)
        column = _HEADINGS.get(key)
        if column is None:
            raise OpeningFileInvalid(
                f"unknown column {heading.strip()!r}; the columns are "
                + ", ".join(f"{english} ({chinese})" for english, chinese in COLUMNS.values())
            )
        if column in columns.values():
            raise OpeningFileInvalid(f"column {column} appears twice")
        columns[index] = column
    missing = [
        column for column in COLUMNS if column not in columns.values() and column not in OPTIONAL
    ]
    if missing:
        raise OpeningFileInvalid(f"the file lacks the column(s) {', '.join(missing)}")
    return columns


def _row(number: int, values: dict[str, str]) -> tuple[OpeningRow | None, list[RowProblem]]:
    problems: list[RowProblem] = []

    def refuse(column: str, reason: str) -> None:
        problems.append(RowProblem(number, column, reason))

    for column in ("student_name", "payer_name"):
        name = values[column]
        if not name:
            refuse(column, "empty")
        elif len(name) > MAX_NAME:
            refuse(column, f"longer than {MAX_NAME} characters")
        elif _CONTROL.search(name):
            refuse(column, "holds a control character")
    id_number = values["student_id_number"]
    try:
        id_number = ric.validate(id_number)
    except ValidationError:
        # Never repeated: the number is personal data (app.enrollments.identity).
        refuse(
            "student_id_number",
            "not a valid 18-character resident identity number (length, birth date or check "
            "character)",
        )
    if not _PHONE.fullmatch(values["payer_phone"]):
        refuse("payer_phone", "not a phone number (digits, spaces, dashes, an optional +)")
    account = values.get("payer_account_no") or None
    if account is not None and not _ACCOUNT.fullmatch(account):
        refuse("payer_account_no", "not an account number of 6 to 40 digits")
    course_id = None
    try:
        course_id = UUID(values["course_id"])
    except ValueError:
        refuse("course_id", "not a course id (a UUID as GET /v1/courses shows it)")
    lessons = None
    if (
        _LESSONS.fullmatch(values["lessons_remaining"])
        and int(values["lessons_remaining"]) <= MAX_LESSONS
    ):
        lessons = int(values["lessons_remaining"])
    else:
        refuse("lessons_remaining", f"not a whole number of lessons from 1 to {MAX_LESSONS}")
    amount = None
    try:
        amount = unconsumed_fen(values["unconsumed_yuan"])
    except ValueError as error:
        refuse("unconsumed_yuan", str(error))
    if amount is not None and lessons is not None and amount < lessons:
        # The remainder rule prices each lesson at floor(amount / lessons): at least one fen.
        refuse("unconsumed_yuan", f"less than 1 分 for each of the {lessons} lessons")
    days = {}
    for column in ("valid_from", "valid_until"):
        try:
            if not _DATE.fullmatch(values[column]):
                raise ValueError
            days[column] = date.fromisoformat(values[column])
        except ValueError:
            refuse(column, f"{values[column]!r} is not a date YYYY-MM-DD")
    if len(days) == 2 and days["valid_until"] < days["valid_from"]:
        refuse("valid_until", "before valid_from")
    if problems:
        return None, problems
    assert course_id is not None and lessons is not None and amount is not None
    return (
        OpeningRow(
            row=number,
            student_name=values["student_name"],
            student_id_number=id_number,
            payer_name=values["payer_name"],
            payer_phone=values["payer_phone"],
            payer_account_no=account,
            course_id=course_id,
            lessons=lessons,
            amount_fen=amount,
            valid_from=days["valid_from"],
            valid_until=days["valid_until"],
        ),
        [],
    )
