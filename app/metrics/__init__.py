"""Prometheus metrics: the HTTP middleware that counts requests, and GET /metrics."""
