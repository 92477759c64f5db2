"""iso20022 (spec iso20022.md): camt.054 notifications, pain.002 results, camt.053 statements, all
signed with `X-Signature: t=..,v1=..`; pain.001 instructions read with defusedxml."""

from dataclasses import dataclass
from datetime import date, datetime, time
from xml.etree.ElementTree import Element as StdElement
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from lxml import etree

from app.banks.iso20022.signing import check_signature, signature_header
from app.kit.clock import SHANGHAI
from app.kit.money import fen_from_yuan, yuan
from bank_simulator.config import SimBank
from bank_simulator.messages.base import INSTRUCTION_ID, Dialect, Outgoing, Submission, Unreadable
from bank_simulator.state import Account, Direction, Instruction, InstructionState, Payment

CAMT054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
PAIN002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
XML = "application/xml"


def verify_request(bank: SimBank, header: str | None, body: bytes, now: datetime) -> None:
    """Raises app.banks.protocol.VerificationFailed."""
    check_signature(header, body, [bank.secret("secret_from_service")], now)


def _text(parent: StdElement, path: str) -> str:
    found = parent.find(path)
    text = (found.text or "").strip() if found is not None else ""
    if not text:
        raise Unreadable(f"{path.replace('{*}', '')} is missing")
    return text


def read_payment_initiation(body: bytes) -> Submission:
    """A pain.001.001.09 holding one credit transfer (a payout or a refund)."""
    try:
        root = fromstring(body)
    except (ParseError, DefusedXmlException) as error:
        raise Unreadable(f"not readable XML: {error}") from error
    transfers = root.findall(".//{*}PmtInf/{*}CdtTrfTxInf")
    if len(transfers) != 1:
        raise Unreadable("one CdtTrfTxInf per instruction")
    payment_info = root.find(".//{*}PmtInf")
    assert payment_info is not None  # found above
    transfer = transfers[0]
    end_to_end_id = _text(transfer, "{*}PmtId/{*}EndToEndId")
    if not INSTRUCTION_ID.fullmatch(end_to_end_id):
        raise Unreadable("EndToEndId is not 1 to 32 letters and digits")
    amount = transfer.find("{*}Amt/{*}InstdAmt")
    if amount is None or amount.get("Ccy") != "CNY":
        raise Unreadable("Amt/InstdAmt in CNY is missing")
    try:
        amount_fen = fen_from_yuan((amount.text or "").strip())
    except ValueError as error:
        raise Unreadable("InstdAmt is not an exact amount of fen") from error
    remittance = _text(transfer, "{*}RmtInf/{*}Ustrd")
    words = remittance.split(" ")
    if remittance == "PAYOUT":
        kind, original_reference = "payout", None
    elif len(words) == 3 and words[0] == "REFUND":
        # REFUND <order_no> <AcctSvcrRef of the payment>: the bank pays back that payment.
        kind, original_reference = "refund", words[2]
    else:
        raise Unreadable("RmtInf/Ustrd is neither PAYOUT nor REFUND <order_no> <AcctSvcrRef>")
    creditor_account = transfer.find("{*}CdtrAcct/{*}Id/{*}Othr/{*}Id")
    if creditor_account is None and kind == "payout":
        raise Unreadable("a payout has no CdtrAcct")
    return Submission(
        id=end_to_end_id,
        kind=kind,
        account_no=_text(payment_info, "{*}DbtrAcct/{*}Id/{*}Othr/{*}Id"),
        amount_fen=amount_fen,
        # Left out of a refund whose payment named no account: routed by the AcctSvcrRef.
        payee_account=(creditor_account.text or "").strip() if creditor_account is not None else "",
        payee_name=_text(transfer, "{*}Cdtr/{*}Nm"),
        memo=remittance,
        original_reference=original_reference,
        origin={
            "MsgId": _text(root, ".//{*}GrpHdr/{*}MsgId"),
            "PmtInfId": _text(payment_info, "{*}PmtInfId"),
        },
    )


class _Doc:
    """A document in one ISO 20022 namespace, written without prefixes."""

    def __init__(self, namespace: str, root: str) -> None:
        self.namespace = namespace
        document = etree.Element(f"{{{namespace}}}Document", nsmap={None: namespace})
        self.root = self.add(document, root)
        self.document = document

    def add(
        self, parent: etree._Element, path: str, text: str | None = None, **attributes: str
    ) -> etree._Element:
        """Append the chain of elements `A/B/C` under `parent`; the last gets text and attributes."""
        element = parent
        for name in path.split("/"):
            element = etree.SubElement(element, f"{{{self.namespace}}}{name}")
        if text is not None:
            element.text = text
        for key, value in attributes.items():
            element.set(key, value)
        return element

    def bytes(self) -> bytes:
        return etree.tostring(
            self.document, xml_declaration=True, encoding="UTF-8", pretty_print=True
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


@dataclass(frozen=True)
class _Entry:
    amount_text: str
    direction: Direction
    status: str
    booked_at: datetime
    bank_reference: str
    end_to_end_id: str
    counterparty_account: str
    counterparty_name: str
    return_reason: str | None = None


def _add_entry(doc: _Doc, parent: etree._Element, e: _Entry) -> None:
    """One `Ntry` (camt.054 and camt.053 share the type), with its single transaction's details."""
    indicator = "CRDT" if e.direction is Direction.credit else "DBIT"
    entry = doc.add(parent, "Ntry")
    doc.add(entry, "Amt", e.amount_text, Ccy="CNY")
    doc.add(entry, "CdtDbtInd", indicator)
    doc.add(entry, "Sts/Cd", e.status)
    doc.add(entry, "BookgDt/DtTm", _iso(e.booked_at))
    doc.add(entry, "ValDt/Dt", e.booked_at.astimezone(SHANGHAI).date().isoformat())
    doc.add(entry, "AcctSvcrRef", e.bank_reference)
    domain = doc.add(entry, "BkTxCd/Domn")
    doc.add(domain, "Cd", "PMNT")
    family = doc.add(domain, "Fmly")
    doc.add(family, "Cd", "RCDT" if e.direction is Direction.credit else "ICDT")
    doc.add(family, "SubFmlyCd", "RRTN" if e.return_reason else "DMCT")
    details = doc.add(entry, "NtryDtls/TxDtls")
    doc.add(details, "Refs/EndToEndId", e.end_to_end_id)
    doc.add(details, "Amt", e.amount_text, Ccy="CNY")
    doc.add(details, "CdtDbtInd", indicator)
    if e.counterparty_name or e.counterparty_account:
        # Money in names whoever paid it (the debtor); money out, whoever it went to.
        party = "Dbtr" if e.direction is Direction.credit else "Cdtr"
        parties = doc.add(details, "RltdPties")
        doc.add(parties, f"{party}/Pty/Nm", e.counterparty_name or e.counterparty_account)
        if e.counterparty_account:
            doc.add(parties, f"{party}Acct/Id/Othr/Id", e.counterparty_account)
    if e.return_reason:
        doc.add(details, "RtrInf/Rsn/Cd", e.return_reason)


def _camt054(account_no: str, message_id: str, at: datetime, entry: _Entry) -> Outgoing:
    doc = _Doc(CAMT054, "BkToCstmrDbtCdtNtfctn")
    header = doc.add(doc.root, "GrpHdr")
    doc.add(header, "MsgId", message_id)
    doc.add(header, "CreDtTm", _iso(at))
    notification = doc.add(doc.root, "Ntfctn")
    doc.add(notification, "Id", message_id)
    doc.add(notification, "CreDtTm", _iso(at))
    account = doc.add(notification, "Acct")
    doc.add(account, "Id/Othr/Id", account_no)
    doc.add(account, "Ccy", "CNY")
    _add_entry(doc, notification, entry)
    return Outgoing(doc.bytes(), XML)


class IsoDialect(Dialect):
    payment_success_status = "BOOK"
    crediting_statuses = frozenset({"BOOK"})
    statement_content_type = XML

    def payment(
        self,
        bank: SimBank,
        *,
        message_id: str,
        payment: Payment,
        status: str,
        amount_text: str,
        at: datetime,
    ) -> Outgoing:
        return _camt054(
            payment.account_no,
            message_id,
            at,
            _Entry(
                amount_text=amount_text,
                direction=Direction.credit,
                status=status,
                booked_at=at,
                bank_reference=payment.bank_reference,
                end_to_end_id=payment.order_no,
                counterparty_account=payment.payer_account,
                counterparty_name=payment.payer_name,
            ),
        )

    def result(
        self, bank: SimBank, *, message_id: str, instruction: Instruction, at: datetime
    ) -> Outgoing:
        doc = _Doc(PAIN002, "CstmrPmtStsRpt")
        header = doc.add(doc.root, "GrpHdr")
        doc.add(header, "MsgId", message_id)
        doc.add(header, "CreDtTm", _iso(at))
        original = doc.add(doc.root, "OrgnlGrpInfAndSts")
        doc.add(original, "OrgnlMsgId", instruction.origin.get("MsgId", instruction.id))
        doc.add(original, "OrgnlMsgNmId", "pain.001.001.09")
        payment_info = doc.add(doc.root, "OrgnlPmtInfAndSts")
        doc.add(payment_info, "OrgnlPmtInfId", instruction.origin.get("PmtInfId", instruction.id))
        transaction = doc.add(payment_info, "TxInfAndSts")
        doc.add(transaction, "OrgnlEndToEndId", instruction.id)
        settled = instruction.state is InstructionState.success
        doc.add(transaction, "TxSts", "ACSC" if settled else "RJCT")
        if not settled:
            doc.add(transaction, "StsRsnInf/Rsn/Cd", instruction.reason or "NARR")
        doc.add(transaction, "AccptncDtTm", _iso(at))
        if instruction.bank_reference:
            doc.add(transaction, "AcctSvcrRef", instruction.bank_reference)
        reference = doc.add(transaction, "OrgnlTxRef")
        doc.add(reference, "Amt/InstdAmt", yuan(instruction.amount_fen), Ccy="CNY")
        doc.add(reference, "DbtrAcct/Id/Othr/Id", instruction.account_no)
        doc.add(reference, "Cdtr/Pty/Nm", instruction.payee_name or instruction.payee_account)
        doc.add(reference, "CdtrAcct/Id/Othr/Id", instruction.payee_account)
        return Outgoing(doc.bytes(), XML)

    def returned(
        self,
        bank: SimBank,
        *,
        message_id: str,
        instruction: Instruction,
        bank_reference: str,
        at: datetime,
    ) -> Outgoing:
        return _camt054(
            instruction.account_no,
            message_id,
            at,
            _Entry(
                amount_text=yuan(instruction.amount_fen),
                direction=Direction.credit,
                status="BOOK",
                booked_at=at,
                bank_reference=bank_reference,
                end_to_end_id=instruction.id,
                counterparty_account=instruction.payee_account,
                counterparty_name=instruction.payee_name,
                return_reason=instruction.reason or "NARR",
            ),
        )

    def sign(self, bank: SimBank, body: bytes, now: datetime) -> dict[str, str]:
        secret = bank.secret("secret_to_service")
        return {"X-Signature": signature_header(secret, body, int(now.timestamp()))}

    def acknowledged(self, status_code: int, body: bytes) -> bool:
        return status_code == 200

    def statement(self, bank: SimBank, account: Account, day: date, now: datetime) -> bytes:
        opening, transactions, closing = account.day(day)
        doc = _Doc(CAMT053, "BkToCstmrStmt")
        statement_id = f"{account.account_no}{day:%Y%m%d}"
        header = doc.add(doc.root, "GrpHdr")
        doc.add(header, "MsgId", f"STMT{statement_id}")
        doc.add(header, "CreDtTm", _iso(now))
        statement = doc.add(doc.root, "Stmt")
        doc.add(statement, "Id", statement_id)
        doc.add(statement, "CreDtTm", _iso(now))
        period = doc.add(statement, "FrToDt")
        doc.add(period, "FrDtTm", _iso(datetime.combine(day, time.min, SHANGHAI)))
        doc.add(period, "ToDtTm", _iso(datetime.combine(day, time(23, 59, 59), SHANGHAI)))
        acct = doc.add(statement, "Acct")
        doc.add(acct, "Id/Othr/Id", account.account_no)
        doc.add(acct, "Ccy", "CNY")
        for code, balance in (("OPBD", opening), ("CLBD", closing)):
            element = doc.add(statement, "Bal")
            doc.add(element, "Tp/CdOrPrtry/Cd", code)
            doc.add(element, "Amt", yuan(abs(balance)), Ccy="CNY")
            doc.add(element, "CdtDbtInd", "CRDT" if balance >= 0 else "DBIT")
            doc.add(element, "Dt/Dt", day.isoformat())
        for t in transactions:
            _add_entry(
                doc,
                statement,
                _Entry(
                    amount_text=yuan(t.amount_fen),
                    direction=t.direction,
                    status="BOOK",
                    booked_at=t.booked_at,
                    bank_reference=t.bank_reference,
                    end_to_end_id=t.reference,
                    counterparty_account=t.counterparty_account,
                    counterparty_name=t.counterparty_name,
                    return_reason=t.return_reason,
                ),
            )
        return doc.bytes()
