"""gmbank: a domestic bank's direct-connect (银企直联) JSON API with SM2/SM3 signatures."""

from app.banks.gmbank.adapter import GmbankAdapter

ADAPTER = GmbankAdapter()

__all__ = ["ADAPTER", "GmbankAdapter"]
