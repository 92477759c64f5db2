"""The iso20022 bank's XML, read and written: camt.054 and pain.002 in, pain.001 out.

Only the elements the spec names carry meaning; every other element is ignored. Inbound XML goes
through defusedxml with DTDs forbidden outright: no ISO 20022 message has a DTD, and refusing them
refuses entity bombs and external references with them."""

import re
from datetime import datetime
from functools import lru_cache
from xml.etree.ElementTree import Element, ParseError

from defusedxml import ElementTree as SafeElementTree
from lxml import etree

from app.banks.protocol import (
    BankEvent,
    DebitBooked,
    InstructionResult,
    MalformedMessage,
    Notice,
    Notification,
    OutboundInstruction,
    PaymentReceived,
    ResultStatus,
    notified_fen,
)
from app.kit.clock import SHANGHAI
from app.kit.money import fen_from_yuan, yuan
from app.models.instruction import InstructionKind

CAMT_054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
PAIN_002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
PAIN_001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"

# Who we are in a pain.001: the instruction does not carry the institution's name, and the bank
# identifies the debtor by the escrow account anyway.
INITIATING_PARTY = "PrepaidGuard"
# ISO 20022's conventional value for an identifier the sender does not have.
NOT_PROVIDED = "NOTPROVIDED"

# xs:dateTime, which is what the schemas allow (fromisoformat alone would take a bare date too).
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)

# pain.002 TxSts. Anything else (PDNG, ACSP, ACCC, a code we do not know) is pending: only the
# spec's ACSC says the money left.
_TRANSACTION_STATUS = {"ACSC": ResultStatus.settled, "RJCT": ResultStatus.failed}


@lru_cache(maxsize=256)
def _qualified(namespace: str, path: str) -> str:
    """`a/b` as `{namespace}a/{namespace}b`, written once per path (a message asks for the same
    few paths every time)."""
    return "/".join(f"{{{namespace}}}{name}" for name in path.split("/"))


class XmlReader:
    """Finds elements of one namespace by slash-separated local names."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _path(self, path: str) -> str:
        return _qualified(self.namespace, path)

    def find(self, element: Element, path: str) -> Element | None:
        return element.find(self._path(path))

    def findall(self, element: Element, path: str) -> list[Element]:
        return element.findall(self._path(path))

    def text(self, element: Element | None, path: str) -> str | None:
        """The element's text without surrounding whitespace; None when absent or empty."""
        found = None if element is None else element.find(self._path(path))
        text = None if found is None or found.text is None else found.text.strip()
        return text or None

    def required(self, element: Element, path: str) -> str:
        text = self.text(element, path)
        if text is None:
            raise MalformedMessage(f"{path} is missing")
        return text

    def code(self, element: Element | None, path: str) -> str | None:
        """A code written as a choice of `Cd` or `Prtry` (a reason, a status)."""
        return self.text(element, f"{path}/Cd") or self.text(element, f"{path}/Prtry")


def parse(body: bytes) -> Notification:
    try:
        root = SafeElementTree.fromstring(body, forbid_dtd=True)
    except (ParseError, ValueError) as error:  # defusedxml's refusals are ValueErrors
        raise MalformedMessage(f"not a safe XML document: {error}") from None
    if root.tag == f"{{{CAMT_054}}}Document":
        return _camt054(XmlReader(CAMT_054), root)
    if root.tag == f"{{{PAIN_002}}}Document":
        return _pain002(XmlReader(PAIN_002), root)
    raise MalformedMessage(f"not a camt.054.001.08 or pain.002.001.10 Document: {root.tag}")


# --- camt.054: credits, returns, and entries that move no money ----------------------------------


def _camt054(xml: XmlReader, document: Element) -> Notification:
    message = xml.find(document, "BkToCstmrDbtCdtNtfctn")
    if message is None:
        raise MalformedMessage("BkToCstmrDbtCdtNtfctn is missing")
    message_id = xml.required(message, "GrpHdr/MsgId")
    events: list[BankEvent] = []
    for notification in xml.findall(message, "Ntfctn"):
        account_no = xml.required(notification, "Acct/Id/Othr/Id")
        events.extend(_entry(xml, account_no, entry) for entry in xml.findall(notification, "Ntry"))
    return Notification(message_id=message_id, events=tuple(events))


def _entry(xml: XmlReader, account_no: str, entry: Element) -> BankEvent:
    amount_fen = entry_amount_fen(xml, entry)
    direction = xml.text(entry, "CdtDbtInd")
    # camt.054.001.08 writes the status as a choice (<Sts><Cd>BOOK</Cd></Sts>); earlier versions
    # wrote it bare (<Sts>BOOK</Sts>), which some banks keep doing. Only the ISO code BOOK moves
    # money: a proprietary status (<Prtry>), whatever it says, is recorded only.
    status = xml.text(entry, "Sts/Cd") or xml.text(entry, "Sts")
    reference = xml.text(entry, "AcctSvcrRef")
    if direction not in ("CRDT", "DBIT") or status != "BOOK":
        if status is None and (proprietary := xml.text(entry, "Sts/Prtry")):
            status = f"proprietary {proprietary}"
        return Notice(
            account_no=account_no,
            description=(
                f"{direction or 'no CdtDbtInd'} entry {reference or '(no AcctSvcrRef)'} of "
                f"{yuan(amount_fen)} CNY with status {status or '(none)'}: moves no money"
            ),
        )
    details = xml.findall(entry, "NtryDtls/TxDtls")
    detail = details[0] if len(details) == 1 else None
    end_to_end_id = xml.text(detail, "Refs/EndToEndId")
    if end_to_end_id == NOT_PROVIDED:
        end_to_end_id = None
    if direction == "DBIT":
        # Money out: ours only if it is one of our instructions, which the inbox looks for.
        return DebitBooked(
            account_no=account_no,
            amount_fen=amount_fen,
            description=(
                f"booked DBIT entry {reference or '(no AcctSvcrRef)'} of {yuan(amount_fen)} CNY "
                f"quoting {end_to_end_id or 'no EndToEndId'}"
                + (f" in {len(details)} TxDtls" if len(details) > 1 else "")
            ),
            bank_reference=reference,
            instruction_id=end_to_end_id,
        )
    if reference is None:
        raise MalformedMessage("a booked credit has no AcctSvcrRef")
    if len(details) > 1:
        # A batch booking: one amount for several transfers, which we could not attribute.
        raise MalformedMessage(f"booked credit {reference} has {len(details)} TxDtls, not one")
    if detail is not None and xml.find(detail, "RtrInf") is not None:
        if end_to_end_id is None:
            raise MalformedMessage(f"returned credit {reference} names no EndToEndId")
        return InstructionResult(
            instruction_id=end_to_end_id,
            status=ResultStatus.returned,
            account_no=account_no,
            amount_fen=amount_fen,
            reason=xml.code(detail, "RtrInf/Rsn"),
            bank_reference=reference,
        )
    return PaymentReceived(
        account_no=account_no,
        order_no=end_to_end_id,
        amount_fen=amount_fen,
        bank_reference=reference,
        paid_at=booked_at(xml, entry),
        # camt.054.001.08 names a party as Dbtr/Pty/Nm; older versions, as the spec writes it,
        # Dbtr/Nm.
        payer_name=xml.text(detail, "RltdPties/Dbtr/Pty/Nm")
        or xml.text(detail, "RltdPties/Dbtr/Nm"),
        payer_account_no=xml.text(detail, "RltdPties/DbtrAcct/Id/Othr/Id"),
    )


def cny_fen(xml: XmlReader, element: Element, what: str) -> int:
    """The element's `Amt` in CNY, exactly in fen (zero too: a balance may be nil)."""
    amount = xml.find(element, "Amt")
    if amount is None:
        raise MalformedMessage(f"{what} has no Amt")
    if amount.get("Ccy") != "CNY":
        raise MalformedMessage(f"{what}'s currency is {amount.get('Ccy')!r}, not CNY")
    try:
        return fen_from_yuan(amount.text or "")
    except ValueError as error:
        raise MalformedMessage(str(error)) from None


def entry_amount_fen(xml: XmlReader, entry: Element) -> int:
    return notified_fen(cny_fen(xml, entry, "an entry"), "an entry's Amt")


def checked_time(text: str, what: str) -> datetime:
    """An xs:dateTime, aware: a CNAPS bank writes local time, so without an offset it is Beijing
    time."""
    if not _DATETIME.fullmatch(text):
        raise MalformedMessage(f"{what} is not an ISO date and time: {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedMessage(f"{what} is not a valid time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=SHANGHAI)


def booked_at(xml: XmlReader, entry: Element) -> datetime:
    return checked_time(xml.required(entry, "BookgDt/DtTm"), "BookgDt/DtTm")


# --- pain.002: what became of our instructions ---------------------------------------------------


def _pain002(xml: XmlReader, document: Element) -> Notification:
    report = xml.find(document, "CstmrPmtStsRpt")
    if report is None:
        raise MalformedMessage("CstmrPmtStsRpt is missing")
    message_id = xml.required(report, "GrpHdr/MsgId")
    events: list[BankEvent] = []
    for transaction in xml.findall(report, "OrgnlPmtInfAndSts/TxInfAndSts"):
        status = _TRANSACTION_STATUS.get(xml.text(transaction, "TxSts") or "", ResultStatus.pending)
        events.append(
            InstructionResult(
                instruction_id=xml.required(transaction, "OrgnlEndToEndId"),
                status=status,
                reason=(
                    xml.code(transaction, "StsRsnInf/Rsn")
                    if status is ResultStatus.failed
                    else None
                ),
            )
        )
    if not events:
        # A report on the group alone names none of our instructions; keep it for an operator.
        group = xml.find(report, "OrgnlGrpInfAndSts")
        events.append(
            Notice(
                account_no=None,
                description=(
                    f"status report {message_id} on message "
                    f"{xml.text(group, 'OrgnlMsgId') or '(none)'} with group status "
                    f"{xml.text(group, 'GrpSts') or '(none)'} and no transaction status"
                ),
            )
        )
    return Notification(message_id=message_id, events=tuple(events))


# --- pain.001: our payouts and refunds -----------------------------------------------------------


def _add(parent: etree._Element, path: str, text: str | None = None) -> etree._Element:
    """Append the chain of elements `path` ("Id/Othr/Id") under `parent`; return the last one."""
    element = parent
    for name in path.split("/"):
        element = etree.SubElement(element, f"{{{PAIN_001}}}{name}")
    element.text = text
    return element


def remittance(instruction: OutboundInstruction) -> str:
    """RmtInf/Ustrd: "PAYOUT", or "REFUND <order_no> <AcctSvcrRef of the payment>": the payee sees
    which enrollment it is, and the bank finds the payment it pays back."""
    if instruction.kind == InstructionKind.payout:
        return "PAYOUT"
    if instruction.order_no is None or instruction.payment_reference is None:
        raise ValueError(
            f"refund {instruction.id} lacks the order_no or the payment's AcctSvcrRef to quote"
        )
    return f"REFUND {instruction.order_no} {instruction.payment_reference}"


def credit_transfer(instruction: OutboundInstruction, now: datetime) -> bytes:
    """A pain.001.001.09 with one payment of `instruction`, elements in the schema's order."""
    local = now.astimezone(SHANGHAI)
    amount = yuan(instruction.amount_fen)
    document = etree.Element(f"{{{PAIN_001}}}Document", nsmap={None: PAIN_001})
    initiation = _add(document, "CstmrCdtTrfInitn")

    header = _add(initiation, "GrpHdr")
    _add(header, "MsgId", instruction.id)
    _add(header, "CreDtTm", local.isoformat(timespec="seconds"))
    _add(header, "NbOfTxs", "1")
    _add(header, "CtrlSum", amount)
    _add(header, "InitgPty/Nm", INITIATING_PARTY)

    payment = _add(initiation, "PmtInf")
    _add(payment, "PmtInfId", instruction.id)
    _add(payment, "PmtMtd", "TRF")
    _add(payment, "ReqdExctnDt/Dt", local.date().isoformat())
    _add(payment, "Dbtr/Nm", INITIATING_PARTY)
    _add(payment, "DbtrAcct/Id/Othr/Id", instruction.escrow_account_no)
    # DbtrAgt is mandatory; the bank is the one receiving this, and needs no BIC of itself.
    _add(payment, "DbtrAgt/FinInstnId/Othr/Id", NOT_PROVIDED)

    transfer = _add(payment, "CdtTrfTxInf")
    _add(transfer, "PmtId/EndToEndId", instruction.id)
    _add(transfer, "Amt/InstdAmt", amount).set("Ccy", "CNY")
    _add(transfer, "Cdtr/Nm", instruction.payee_name)
    if instruction.payee_account_no is not None:
        # Left out for a refund of a payment that named no DbtrAcct: the bank routes it by the
        # payment's AcctSvcrRef in RmtInf.
        _add(transfer, "CdtrAcct/Id/Othr/Id", instruction.payee_account_no)
    _add(transfer, "RmtInf/Ustrd", remittance(instruction))
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")
