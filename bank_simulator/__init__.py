"""A bank simulator: a separate FastAPI app that plays the bank side of the three bank specs in
/work/shared/banks (ums, iso20022, gmbank) over real HTTP. It holds escrow accounts, accepts or
refuses instructions, executes them, pushes signed notifications and results to the service, and
produces daily statement files. It reads the specs independently of the service's adapters."""
