"""The opening-balance file, read without a database: headings in either language, each refused
row named with its column and reason, amounts in 元 converted to fen exactly."""

import uuid
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from app.opening.csvfile import OpeningFileInvalid, read, unconsumed_fen
from tests.factories import valid_id_number
from tests.opening.helpers import CHINESE, ENGLISH, csv_file, row

COURSE = uuid.uuid4()


@given(
    st.integers(min_value=0, max_value=10**15),
    st.text(alphabet="0123456789", max_size=2),
)
def test_yuan_with_up_to_two_decimals_is_exactly_its_fen(whole, decimals):
    fen = whole * 100 + int(decimals.ljust(2, "0"))
    assume(fen > 0)
    text = f"{whole}.{decimals}" if decimals else str(whole)

    assert unconsumed_fen(text) == fen
    assert unconsumed_fen(f" {text} ") == fen  # a spreadsheet's stray spaces


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=999))
def test_a_third_decimal_is_refused_even_when_it_is_zero(whole, thousandths):
    with pytest.raises(ValueError, match="at most two decimals"):
        unconsumed_fen(f"{whole}.{thousandths:03d}")


@given(st.integers(min_value=0, max_value=10**12))
def test_a_negative_amount_is_refused(fen):
    with pytest.raises(ValueError):
        unconsumed_fen(f"-{fen // 100}.{fen % 100:02d}")


@pytest.mark.parametrize(
    "text",
    ["0", "0.00", "0.0", "", "1,000", "1e3", "01.50", "1.", ".5", "+1", "\uff11\uff12", "NaN"],
)
def test_what_is_not_an_amount_above_zero_is_refused(text):
    with pytest.raises(ValueError):
        unconsumed_fen(text)


def test_english_and_chinese_headings_with_or_without_bom_read_alike():
    line = row(COURSE, 12_345, 5, id_number=valid_id_number())
    english = read(csv_file(line))
    chinese = read(csv_file(line, header=CHINESE, bom=True))

    assert english == chinese
    assert english.problems == []
    [found] = english.rows
    assert (found.row, found.lessons, found.amount_fen, found.course_id) == (2, 5, 12_345, COURSE)
    assert found.payer_account_no == "6222000011112222"


def test_columns_in_another_order_and_the_optional_account_left_out():
    header = "unconsumed_yuan,lessons_remaining,course_id,student_name,student_id_number,payer_name,payer_phone,valid_from,valid_until"
    line = f"99.90,3,{COURSE},Xiao Ming,{valid_id_number()},Wang Fang,+86 138-0000-0000,2026-01-01,2026-12-31"

    parsed = read(csv_file(line, header=header))

    assert parsed.problems == []
    assert parsed.rows[0].amount_fen == 9_990 and parsed.rows[0].payer_account_no is None


def test_every_problem_of_every_row_is_named_by_row_and_column():
    good = row(COURSE, 100)
    bad_id = row(COURSE, 100, id_number="110105201001010000")
    bad_many = ",".join(
        ["", "x", "Wang", "phone?", "12", "not-a-uuid", "0", "-5", "2026-02-30", "2026-01-01"]
    )
    backwards = row(COURSE, 100, valid_from=None, valid_until=None).rsplit(",", 2)[0] + (
        ",2026-05-01,2026-04-30"
    )
    cheap = row(COURSE, 2, lessons=3)  # less than a fen a lesson

    parsed = read(csv_file(good, bad_id, bad_many, "only,three,cells", backwards, cheap))

    assert [r.row for r in parsed.rows] == [2]
    assert [(p.row, p.column) for p in parsed.problems] == [
        (3, "student_id_number"),
        (4, "student_name"),
        (4, "student_id_number"),
        (4, "payer_phone"),
        (4, "payer_account_no"),
        (4, "course_id"),
        (4, "lessons_remaining"),
        (4, "unconsumed_yuan"),
        (4, "valid_from"),
        (5, ""),
        (6, "valid_until"),
        (7, "unconsumed_yuan"),
    ]
    # The identity number, personal data, is never repeated in a reason.
    assert all("110105201001010000" not in p.reason for p in parsed.problems)


def test_blank_lines_are_skipped_and_rows_keep_their_spreadsheet_numbers():
    parsed = read(csv_file("", row(COURSE, 100), ",,,,,,,,,"))
    assert [r.row for r in parsed.rows] == [3]


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "empty"),
        (ENGLISH.encode(), "no student"),
        ("学生姓名".encode("gbk"), "not UTF-8"),
        (b"name,amount\n", "unknown column 'name'"),
        (ENGLISH.replace("course_id", "student_name").encode(), "appears twice"),
        (ENGLISH.replace(",course_id", "").encode(), "lacks the column(s) course_id"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(data, said):
    with pytest.raises(OpeningFileInvalid, match=said.replace("(", r"\(").replace(")", r"\)")):
        read(data)


def test_the_example_in_the_docs_reads_without_a_problem():
    example = Path(__file__).parents[2] / "docs" / "examples" / "opening-balances.csv"

    parsed = read(example.read_bytes())

    assert parsed.problems == [] and len(parsed.rows) == 3
    assert parsed.total_fen == 480_000 + 199_950 + 10_000
