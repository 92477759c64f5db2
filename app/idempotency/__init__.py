"""Idempotency-Key handling for every POST: claim, replay, release."""
