"""The bank adapters by name, as `PUT /v1/banks/{slug}` names them in `adapter`."""

from app.banks.gmbank import ADAPTER as GMBANK
from app.banks.iso20022 import ADAPTER as ISO20022
from app.banks.protocol import BankAdapter
from app.banks.ums import ADAPTER as UMS

ADAPTERS: dict[str, BankAdapter] = {adapter.name: adapter for adapter in (UMS, ISO20022, GMBANK)}
