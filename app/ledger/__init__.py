"""The double-entry ledger: the only code that writes money.

Model
    Every institution has its own accounts (`AccountKind`), amounts in fen. A journal entry is one
    business event; its postings are signed (debit +, credit -) and sum to zero. An account's
    `balance_fen` is the raw sum of its postings, kept in the same transaction as the postings, so
    the current balance is one row read and the balances of an institution always sum to zero.
    Corrections are new, reversing entries: the database refuses UPDATE and DELETE of journal rows.

Concurrency: which lock serialises each balance change
    * Every write (post, reserve, post or void a transfer) first locks the institution's row in
      `ledger_heads` (SELECT ... FOR UPDATE). That one lock serialises every balance change of that
      institution, the assignment of its journal sequence numbers and its hash chain. Accounts are
      then read, checked against their limits and updated under it, in ascending account id order.
      The head is always the first ledger row a transaction locks, and a ledger transaction touches
      one institution only, so two ledger writes can never wait on each other in a cycle, and
      institutions never wait on each other at all (the natural shard key for Citus). The one
      exception is a group commit across institutions on one database (`read_locked` and
      `post_many_read`, GROUP_COMMIT_SCOPE=database, never where the tables are sharded): it
      takes its institutions' heads in one statement in id order, so it still waits in no cycle.
    * Idempotency: an entry's key is unique per institution. Keys are checked under the lock, so a
      concurrent replay waits for the first and then sees it; posting again returns the first entry.
    * Two-phase transfers are resolved under the same lock, so a transfer is posted or voided once.
    * Opening an account takes no lock: it starts at zero and `(institution_id, code)` is unique.
    * The unit of work is retried whole on serialisation failures and deadlocks (40001, 40P01), which
      can still come from the caller's own non-ledger rows (`app.db.transaction`).
    * On SQLite, BEGIN IMMEDIATE takes the database's single write lock, which serialises everything.

Write cost
    One lock round trip, then on PostgreSQL one read (the chain's tip, the keys, the accounts) and one
    write (postings, entries, balances, head) whatever the number of entries: a batch of entries of
    one institution (`post_many`, e.g. a lesson batch) shares one lock acquisition and one commit,
    which is what keeps one busy institution fast. The lock is taken once per transaction: a caller
    that took it (`lock`) to read balances that must stay true posts without asking again, and so
    does one whose own statement locked the head after its rows (`locked_by_caller`: a lesson's
    confirmation locks the lesson, its enrollment and the head in one round trip).
"""
