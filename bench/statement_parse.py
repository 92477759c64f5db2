"""Statement lines read per second, per bank format, by the adapters' streaming readers.

    python -m bench.statement_parse --lines 1000000

For each format it writes a statement of `--lines` movements to a temporary file (in the bank's
format: ums `H|D|T`, iso20022 camt.053, gmbank GBK CSV), then times reading it back in 64 KiB
chunks, as the intake hands a stored file to the reader: every line parsed, checked against the
account, the day and the running balance, and the totals checked at the end. It prints the time
(wall, and the process's CPU, as the machine is shared) and the lines per second; memory is the
tests' business (`tests/banks/test_statement_streaming.py` reads 200,000 lines of `synthetic`
under tracemalloc, and tracing would slow this down tenfold).
"""

import argparse
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from app.banks.registry import ADAPTERS
from app.kit.clock import SHANGHAI
from app.kit.money import yuan

ACCOUNT_NO = "6222020200112233"
DAY = date(2026, 11, 28)
CHUNK = 64 * 1024
CAMT_053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


@dataclass(frozen=True)
class Day:
    """A synthetic day of one escrow account: `lines` movements spread over `day`, every
    `payout_every`-th the debit of a payout, the others credits of a payment."""

    lines: int
    day: date = DAY
    account_no: str = ACCOUNT_NO
    payout_every: int = 4

    def movements(self) -> Iterator[tuple[int, datetime, bool, int, int]]:
        """(number, booked at, credit?, amount, balance after), in time order."""
        balance = 0
        start = datetime.combine(self.day, datetime.min.time(), SHANGHAI)
        for n in range(self.lines):
            credit = n % self.payout_every != self.payout_every - 1
            amount = 12_345 if credit else 20_000
            balance += amount if credit else -amount
            at = start + timedelta(seconds=n * 86_399 // max(self.lines, 1))
            yield n, at, credit, amount, balance

    def totals(self) -> tuple[int, int]:
        """The credits and the debits of the day."""
        credits = debits = 0
        for _, _, credit, amount, _ in self.movements():
            if credit:
                credits += amount
            else:
                debits += amount
        return credits, debits


def serial(n: int) -> str:
    """The bank's serial of movement `n`."""
    return f"{n:022d}"


def reference(n: int, credit: bool) -> str:
    """What movement `n` quotes: a payment its order number, a payout our instruction id."""
    return f"ORDER{n:010d}" if credit else f"PO{n:030d}"


def _ums(spec: Day) -> Iterator[str]:
    lines, day, account_no = spec.lines, spec.day, spec.account_no
    credits, debits = spec.totals()
    yield f"H|G00042|{account_no}|{day:%Y%m%d}|0|{credits - debits}|{lines}\n"
    for n, at, credit, amount, balance in spec.movements():
        yield (
            f"D|{serial(n)}|{at:%Y%m%d%H%M%S}|{'C' if credit else 'D'}|{amount}|{balance}|"
            f"6217000010002{n % 1000:03d}|张三{n % 97}|{reference(n, credit)}|学费 {n}\n"
        )
    yield f"T|{credits}|{debits}\n"


def _gmbank(spec: Day) -> Iterator[str]:
    account_no = spec.account_no
    credits, debits = spec.totals()
    yield "账号,交易日期,交易时间,流水号,借贷标志,金额,余额,对方账号,对方户名,摘要,业务参考号\r\n"
    for n, at, credit, amount, balance in spec.movements():
        yield (
            f"{account_no},{at:%Y%m%d},{at:%H%M%S},{serial(n)},{'贷' if credit else '借'},"
            f"{yuan(amount)},{yuan(balance)},6217000010002{n % 1000:03d},张三{n % 97},学费 {n},"
            f"{reference(n, credit)}\r\n"
        )
    yield f"期初余额,0.00\r\n期末余额,{yuan(credits - debits)}\r\n"


def _iso20022(spec: Day) -> Iterator[str]:
    day, account_no = spec.day, spec.account_no
    credits, debits = spec.totals()
    yield (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{CAMT_053}"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>STMT{day:%Y%m%d}</MsgId></GrpHdr><Stmt><Id>S1</Id>"
        f"<FrToDt><FrDtTm>{day}T00:00:00+08:00</FrDtTm><ToDtTm>{day}T23:59:59+08:00</ToDtTm>"
        f"</FrToDt><Acct><Id><Othr><Id>{account_no}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>\n"
    )
    for code, fen in (("OPBD", 0), ("CLBD", credits - debits)):
        yield (
            f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">{yuan(fen)}</Amt>'
            f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>\n"
        )
    for n, at, credit, amount, _ in spec.movements():
        party = "Dbtr" if credit else "Cdtr"
        yield (
            f'<Ntry><Amt Ccy="CNY">{yuan(amount)}</Amt><CdtDbtInd>{"CRDT" if credit else "DBIT"}'
            f"</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>{at.isoformat()}</DtTm></BookgDt>"
            f"<AcctSvcrRef>{serial(n)}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>"
            f"{reference(n, credit)}"
            f"</EndToEndId></Refs><RltdPties><{party}><Pty><Nm>张三{n % 97}</Nm></Pty></{party}>"
            f"<{party}Acct><Id><Othr><Id>6217000010002{n % 1000:03d}</Id></Othr></Id></{party}Acct>"
            f"</RltdPties></TxDtls></NtryDtls></Ntry>\n"
        )
    yield "</Stmt></BkToCstmrStmt></Document>\n"


_WRITERS = {"ums": (_ums, "utf-8"), "iso20022": (_iso20022, "utf-8"), "gmbank": (_gmbank, "gbk")}


def synthetic(adapter: str, day: Day | int) -> Iterator[bytes]:
    """A valid statement of the day (or of that many movements of the default day) in the bank's
    format, made as it is read: chunks of about 64 KiB, so that the file itself is never in
    memory."""
    write, encoding = _WRITERS[adapter]
    pending: list[str] = []
    size = 0
    for text in write(day if isinstance(day, Day) else Day(day)):
        pending.append(text)
        size += len(text)
        if size >= CHUNK // 2:
            yield "".join(pending).encode(encoding)
            pending, size = [], 0
    yield "".join(pending).encode(encoding)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk


def _read_all(adapter: str, path: Path) -> int:
    reader = ADAPTERS[adapter].read_statement(_file_chunks(path))
    count = sum(1 for _ in reader.lines())
    assert reader.summary().lines == count
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--adapters", nargs="+", default=["ums", "gmbank", "iso20022"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        for adapter in args.adapters:
            path = Path(directory) / adapter
            with path.open("wb") as file:
                for chunk in synthetic(adapter, args.lines):
                    file.write(chunk)
            started, cpu = time.perf_counter(), time.process_time()
            count = _read_all(adapter, path)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            print(
                f"{adapter:9} {count:>9,} lines  {path.stat().st_size / 2**20:7.1f} MiB  "
                f"{seconds:6.2f} s  (CPU {cpu:6.2f} s)  {count / seconds:>9,.0f} lines/s"
            )


if __name__ == "__main__":
    main()
