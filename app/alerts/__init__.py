"""Alerts the regulator sees about an institution."""
