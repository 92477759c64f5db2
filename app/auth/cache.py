"""A short per-process memory of API keys already looked up, so that an ordinary request spends no
round trip on authentication.

Only keys found live are remembered, by their keyed hash (never the key itself), tagged with the
key's id. Revoking a key forgets it in this process at once (app.kit.ttl_cache says why for a whole
ttl); other processes stop accepting it within CACHE_SECONDS (10 by default; 0 turns the
memory off). A new key is never missed: what is not remembered is looked up.
"""

from app.auth.principal import Principal
from app.kit.ttl_cache import TtlCache

keys: TtlCache[str, Principal] = TtlCache(ttl=10.0)
"""This process's memory of live keys by their hash; `create_app` sets its `ttl`."""
