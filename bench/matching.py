"""Statement matching (app/reconciliation/matching.py): one escrow account's day, in memory.

    python -m bench.matching --movements 1000000

Makes `--movements` ledger movements (payments known by the bank's serial, payouts and refunds
known by their instruction id, returns) and streams a statement of as many lines against them:
most match by serial, a share by reference, a share only by amount within the window, and a few
hundred planted breaks of every type. Prints the seconds spent matching (the lines are made as
they are read, as a statement reader makes them) and the peak memory of the process, and checks
whether exactly the planted breaks came out (and which others did).
"""

import argparse
import json
import random
import resource
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from app.banks.protocol import Direction, StatementLine
from app.reconciliation.matching import BreakType, Match, Matcher, Movement, MovementKind

DAY = datetime(2026, 11, 27, tzinfo=UTC)
WINDOW = timedelta(minutes=30)
PLANTED = 100  # of each line break type; missing_at_bank as many


def movements(count: int, rng: random.Random, prices: int) -> list[Movement]:
    """Payments of `prices` different amounts (any amount when 0), then payouts, refunds and
    returns, spread over the day."""
    made = []
    for n in range(count):
        at = DAY + timedelta(seconds=n * 86_000 // count)
        share = n % 20
        if share < 16:  # payments, their serial known from the notification
            made.append(
                Movement(
                    f"E{n:031d}",
                    MovementKind.payment,
                    Direction.credit,
                    rng.randrange(1, prices + 1) * 10_000 if prices else rng.randrange(1, 500_000),
                    at,
                    f"S{n:019d}",
                    f"PG{n:030d}",
                )
            )
        else:  # payouts, refunds and returns, known by our instruction id
            kind = (MovementKind.payout, MovementKind.refund, MovementKind.returned)[share % 3]
            instruction_id = f"{'PO' if share % 2 else 'RF'}{n:030x}"
            made.append(
                Movement(
                    instruction_id,
                    kind,
                    Direction.credit if kind is MovementKind.returned else Direction.debit,
                    rng.randrange(1, 5_000_000),
                    at,
                    None,
                    instruction_id,
                )
            )
    return made


def statement(
    ledger: list[Movement], rng: random.Random, planted: Counter, by_amount_every: int
) -> Iterator[StatementLine]:
    """The bank's lines for the ledger's movements, with breaks planted (and counted) on the way."""
    number = 0

    def line(serial, at, direction, amount, reference, returned=False):
        nonlocal number
        number += 1
        return StatementLine(
            number, serial, at, direction, amount, reference, None, None, None, returned
        )

    plant_at = set(rng.sample(range(len(ledger)), 6 * PLANTED))
    for n, movement in enumerate(ledger):
        at = movement.at + timedelta(seconds=rng.randrange(-60, 60))
        serial = movement.bank_reference or f"B{n:019d}"
        reference = movement.reference
        if n % by_amount_every == 0 and n not in plant_at:  # known only by amount and time
            serial, reference = f"W{n:019d}", None
        if n not in plant_at:
            yield line(
                serial,
                at,
                movement.direction,
                movement.amount_fen,
                reference,
                movement.kind is MovementKind.returned,
            )
            continue
        kind = sum(planted.values()) % 6
        if kind == 0:  # the bank never executed it
            planted[BreakType.missing_at_bank] += 1
        elif kind == 1:
            planted[BreakType.amount_mismatch] += 1
            yield line(serial, at, movement.direction, movement.amount_fen + 1, reference)
        elif kind == 2:
            planted[BreakType.duplicate] += 1
            yield line(serial, at, movement.direction, movement.amount_fen, reference)
            yield line(serial, at, movement.direction, movement.amount_fen, reference)
        elif kind == 3:
            planted[BreakType.missing_in_ledger] += 1
            yield line(serial, at, movement.direction, movement.amount_fen, reference)
            yield line(f"X{n:019d}", at, Direction.credit, 7_777_777, f"PGX{n:029d}")
        elif kind == 4:
            planted[BreakType.unauthorized_debit] += 1
            yield line(serial, at, movement.direction, movement.amount_fen, reference)
            yield line(f"U{n:019d}", at, Direction.debit, 8_888_888, None)
        else:
            planted[BreakType.returned] += 1
            yield line(serial, at, movement.direction, movement.amount_fen, reference)
            yield line(f"R{n:019d}", at, Direction.credit, 9_999_999, f"PO{n + 10**9:030x}", True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movements", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prices", type=int, default=0, help="payment amounts (0: any)")
    parser.add_argument(
        "--by-amount-every", type=int, default=97, help="one line in N known only by its amount"
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    ledger = movements(args.movements, random.Random(args.seed), args.prices)
    # The same statement made and thrown away, to tell the time a reader takes from the matching.
    started = time.perf_counter()
    for _ in statement(ledger, random.Random(args.seed + 1), Counter(), args.by_amount_every):
        pass
    making = time.perf_counter() - started
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    planted: Counter = Counter()
    started = time.perf_counter()
    matcher = Matcher(ledger, window=WINDOW)
    lines = matches = 0
    found: Counter = Counter()
    for line in statement(ledger, random.Random(args.seed + 1), planted, args.by_amount_every):
        lines += 1
        outcome = matcher.first_pass(line)
        if outcome is None:
            continue
        if isinstance(outcome, Match):
            matches += 1
        else:
            found[outcome.type] += 1
    result = matcher.finish(grace_cutoff=DAY + timedelta(days=1))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    matches += len(result.matches)
    found.update(b.type for b in result.breaks)
    report = {
        "movements": len(ledger),
        "prices": args.prices,
        "by_amount_every": args.by_amount_every,
        "lines": lines,
        "matched": matches,
        "breaks": dict(sorted(found.items())),
        "planted": dict(sorted(planted.items())),
        "seconds": round(seconds, 2),
        "of_which_making_lines": round(making, 2),
        "matching_seconds": round(seconds - making, 2),
        "peak_rss_mib": round(peak / 1024),
        "rss_before_matching_mib": round(before / 1024),
    }
    # Breaks no one planted: lines known only by amount that the nearest-first window rule left
    # without a movement (when movements of one amount crowd the window), each with its movement.
    report["unplanted"] = {kind: count for kind, count in (found - planted).items()}
    report["planted_found"] = not (planted - found)
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
