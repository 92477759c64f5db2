"""The iso20022 daily statement: a camt.053.001.08 `BkToCstmrStmt` of one account, read as it
streams in. The parser is fed chunk by chunk and each `Ntry` is dropped once read, so a day of a
million entries costs the memory of one.

The rules of a camt.054 hold (messages.py): no DTD at all (so no entity, internal or external), no
network, no huge-tree mode; only a `BOOK` entry moves money. `Stmt` lists `FrToDt`, `Acct` and the
balances before its entries, so each entry is checked against them as it comes."""

from collections.abc import Generator, Iterable, Iterator
from datetime import date
from typing import Any

from lxml import etree

from app.banks.iso20022.messages import (
    NOT_PROVIDED,
    XmlReader,
    checked_time,
    cny_fen,
    entry_amount_fen,
)
from app.banks.protocol import (
    Direction,
    MalformedMessage,
    StatementLine,
    StatementMalformed,
    StatementSummary,
)
from app.banks.statement_reading import StatementTally, StreamedStatement
from app.kit.clock import SHANGHAI

CAMT_053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
_XML = XmlReader(CAMT_053)
_STMT, _ACCT, _PERIOD, _BAL, _NTRY = (
    f"{{{CAMT_053}}}{name}" for name in ("Stmt", "Acct", "FrToDt", "Bal", "Ntry")
)
_NAMESPACE = f"{{{CAMT_053}}}"
_DIRECTIONS = {"CRDT": Direction.credit, "DBIT": Direction.debit}
_BALANCES = ("OPBD", "CLBD")  # opening booked, closing booked


def _elements(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The `Stmt` and its `FrToDt`, `Acct`, `Bal` and `Ntry` elements, each once it is complete."""
    parser = etree.XMLPullParser(
        events=("end",),
        tag=(_STMT, _ACCT, _PERIOD, _BAL, _NTRY),
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    checked_dtd = False

    def parsed(feed: Any, *data: bytes) -> Iterator[Any]:
        nonlocal checked_dtd
        try:
            feed(*data)
        except etree.XMLSyntaxError as error:
            raise StatementMalformed(f"not well-formed XML: {error.msg}", error.lineno) from None
        for _, element in parser.read_events():
            if not checked_dtd:
                # A DTD is where entities are declared, and no ISO 20022 message has one.
                if element.getroottree().docinfo.internalDTD is not None:
                    raise StatementMalformed("the file has a DTD: refused, entities and all")
                checked_dtd = True
            yield element

    for chunk in chunks:
        yield from parsed(parser.feed, chunk)
    yield from parsed(parser.close)


class _Statement:
    """What the `Stmt` says before its entries, and the entries it lists."""

    def __init__(self, tally: StatementTally) -> None:
        self.tally = tally
        self.account_no: str | None = None
        self.day: date | None = None
        self.balances: dict[str, int] = {}
        self.ended = False

    def take(self, element: Any, number: int) -> StatementLine | None:
        """Reads one element; an entry becomes a line (None if not booked)."""
        if element.tag == _STMT:
            self.ended = True
            return None
        if element.getparent().tag != _STMT:
            return None  # a namesake deeper down, read with its entry
        if self.ended:
            raise MalformedMessage("a second Stmt: a file is the statement of one account")
        if element.tag == _NTRY:
            line = self._entry(element, number)
            element.getparent().remove(element)  # read: it need not stay in memory
            return line
        if element.tag == _ACCT:
            self.account_no = _XML.required(element, "Id/Othr/Id")
        elif element.tag == _PERIOD:
            self._period(element)
        else:
            self._balance(element)
        return None

    def summary(self) -> StatementSummary:
        missing = [code for code in _BALANCES if code not in self.balances]
        if missing:
            raise StatementMalformed(f"no {' and no '.join(missing)} balance")
        if self.tally.account_no is None and self.account_no is not None and self.day is not None:
            self.tally.expect(self.account_no, self.day)  # a day without entries names them too
        return self.tally.summary(self.balances["OPBD"], self.balances["CLBD"], None)

    def _period(self, element: Any) -> None:
        start = checked_time(_XML.required(element, "FrDtTm"), "FrToDt/FrDtTm")
        self.day = start.astimezone(SHANGHAI).date()
        end = _XML.text(element, "ToDtTm")
        if end is not None:
            last = checked_time(end, "FrToDt/ToDtTm").astimezone(SHANGHAI).date()
            if last != self.day:
                raise MalformedMessage(f"FrToDt runs from {self.day} to {last}: not one day")

    def _balance(self, element: Any) -> None:
        code = _XML.code(element, "Tp/CdOrPrtry")
        if code not in _BALANCES:
            return  # an interim or available balance: not the day's opening or closing
        if code in self.balances:
            raise MalformedMessage(f"a second {code} balance")
        fen = cny_fen(_XML, element, f"the {code} balance")
        indicator = _XML.text(element, "CdtDbtInd")
        if indicator not in _DIRECTIONS:
            raise MalformedMessage(f"the {code} balance's CdtDbtInd is {indicator!r}")
        self.balances[code] = -fen if indicator == "DBIT" else fen
        dated = _XML.text(element, "Dt/Dt")
        if self.day is None and dated is not None:
            # A statement without FrToDt covers the day its balances are for.
            try:
                self.day = date.fromisoformat(dated)
            except ValueError:
                raise MalformedMessage(
                    f"the {code} balance's Dt is not a date: {dated!r}"
                ) from None

    def _entry(self, element: Any, number: int) -> StatementLine | None:
        if self.tally.account_no is None:
            if self.account_no is None or self.day is None:
                raise MalformedMessage("an entry before the statement's Acct and FrToDt")
            self.tally.expect(self.account_no, self.day)
        entry = _Descendants(element)
        status = entry.text("Sts/Cd") or entry.text("Sts")
        if status != "BOOK":
            return None  # pending or information only: no money moved
        indicator = entry.text("CdtDbtInd")
        if indicator not in _DIRECTIONS:
            raise MalformedMessage(f"CdtDbtInd is {indicator!r}, not CRDT or DBIT")
        direction = _DIRECTIONS[indicator]
        details = entry.count(_DETAIL)
        if details > 1:
            # A batch booking: one amount for several transfers, which cannot be matched singly.
            raise MalformedMessage(f"a booked entry with {details} TxDtls, not one")
        end_to_end_id = entry.text(f"{_DETAIL}/Refs/EndToEndId")
        party = f"{_DETAIL}/RltdPties/{'Dbtr' if direction is Direction.credit else 'Cdtr'}"
        return self.tally.count(
            StatementLine(
                number=number,
                bank_reference=entry.required("AcctSvcrRef"),
                booked_at=checked_time(entry.required("BookgDt/DtTm"), "BookgDt/DtTm"),
                direction=direction,
                amount_fen=entry_amount_fen(_XML, element),
                reference=None if end_to_end_id == NOT_PROVIDED else end_to_end_id,
                counterparty_account_no=entry.text(f"{party}Acct/Id/Othr/Id"),
                # camt.053.001.08 names a party as Pty/Nm; older versions, bare Nm.
                counterparty_name=entry.text(f"{party}/Pty/Nm") or entry.text(f"{party}/Nm"),
                memo=entry.text(f"{_DETAIL}/RmtInf/Ustrd") or entry.text("AddtlNtryInf"),
                returned=entry.count(f"{_DETAIL}/RtrInf") > 0,
            )
        )


_DETAIL = "NtryDtls/TxDtls"  # an entry's one transfer, if it lists it


class _Descendants:
    """An entry's elements of the statement's namespace by their path of local names below it
    (`BookgDt/DtTm`), found in one walk: as `XmlReader` would find them (the first in document
    order), without the dozen path searches that cost five times the parsing."""

    def __init__(self, element: Any) -> None:
        self._first: dict[str, Any] = {}
        self._more: dict[str, int] = {}
        self._walk(element, "")

    def _walk(self, parent: Any, above: str) -> None:
        for child in parent:
            tag = child.tag
            if isinstance(tag, str) and tag.startswith(_NAMESPACE):
                path = above + tag[len(_NAMESPACE) :]
                if path in self._first:
                    self._more[path] = self._more.get(path, 0) + 1
                else:
                    self._first[path] = child
                if len(child):  # has children of its own
                    self._walk(child, path + "/")

    def count(self, path: str) -> int:
        return (path in self._first) + self._more.get(path, 0)

    def text(self, path: str) -> str | None:
        """The element's text without surrounding whitespace; None when absent or empty."""
        found = self._first.get(path)
        text = None if found is None or found.text is None else found.text.strip()
        return text or None

    def required(self, path: str) -> str:
        text = self.text(path)
        if text is None:
            raise MalformedMessage(f"{path} is missing")
        return text


class IsoStatement(StreamedStatement):
    def _read(self, chunks: Iterable[bytes]) -> Generator[StatementLine, None, StatementSummary]:
        statement = _Statement(self.tally)
        for element in _elements(chunks):
            number = element.sourceline or 0
            try:
                line = statement.take(element, number)
            except StatementMalformed:
                raise
            except MalformedMessage as error:
                raise StatementMalformed(error.detail, number) from None
            if line is not None:
                yield line
        if statement.account_no is None:
            raise StatementMalformed(f"not a camt.053.001.08 statement: no Stmt/Acct in {CAMT_053}")
        return statement.summary()
