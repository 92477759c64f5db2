"""A day at the start of term, replayed against the real service, with the bank simulator playing
the banks; it ends by proving that no fen was lost.

    python -m bench.term --institutions 20 --database-url postgresql://postgres@127.0.0.1:5432/bench_term

Drops and recreates the database, migrates it, and starts the service as `--workers` uvicorn
processes (one per port, as behind a load balancer, like `bench.notifications`) and the bank
simulator in a process of its own (`bench.term.bank`), which sends its notifications to those
processes in turn. Then, all through the HTTP API, `--connections` requests at a time:

1. onboarding: three banks (ums, iso20022, gmbank) configured with keys made for the run, one
   jurisdiction, `--institutions` institutions spread over the banks, each with its key, its escrow
   account opened at the bank and a course; `--enrollments` enrollments per institution;
2. the payment burst: every parent pays at the bank, which notifies the service (the latency is
   the bank's call to the service until the credit is committed); then every parent reads the
   enrollment and must see it paid;
3. the evening peak: `--lessons` lesson records per enrollment, the first half one by one
   (`POST /v1/enrollments/{id}/lessons`), the rest in batches of up to `--batch-size` per
   institution (`POST /v1/lessons/batch`);
4. the parents confirm every lesson but each enrollment's last, left pending;
5. the T+1 payout batch: `release_payouts` as of tomorrow, `dispatch_instructions`, the banks
   execute, `poll_instructions`; every institution's payout must be exactly its confirmed lessons,
   and settled;
6. refunds: every `--refund-every`-th family asks for its money back, the institution approves,
   the instructions go to the banks, which pay, and each refund must be exactly what was paid less
   the lessons recorded, and settled;
7. statements: each bank sends the day's statement of each escrow account, reconciled on receipt.

It reports throughput and p50/p95/p99 per operation, and the CPU seconds and peak RSS of the
service's processes and of the bank's (from /proc). Then it checks, and exits non-zero with
`FAILED: ...` on the first thing wrong: every institution's journal verifies (the regulator's
`GET /v1/regulator/ledger/verify`); every institution's ledger holds DOMAIN.md's identity (escrow
cash = prepaid + releasable + in transit + suspense + own funds) and exactly the figures the replay
expects from what it did (paid, released, paid out, refunded: to the fen); each escrow account at
the bank holds what the ledger says; every statement reconciled clean and no break is open.

`day.py` is the day and what it remembers of it, `checks.py` the end checks, `measure.py` the
timing, /proc readings and HTTP clients, `run.py` the processes and the report, `bank.py` the
bank's process.
"""
