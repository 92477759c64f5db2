"""A small per-process memory of values read from the database, each kept for `ttl` seconds.

Every value carries a tag naming what it was read from (an API key's id, a jurisdiction's code).
Changing that thing calls `forget(tag)`: its values go at once, and for a whole `ttl` nothing under
the tag is remembered again, so that a request which read the old value before the change
committed cannot put it back. Other processes see the change within `ttl`. A `ttl` of 0 remembers
nothing.
"""

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_ENTRIES = 10_000  # the least recently used beyond it are forgotten


class TtlCache(Generic[K, V]):
    def __init__(
        self,
        ttl: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._held: OrderedDict[K, tuple[V, Hashable, float]] = OrderedDict()
        self._forgotten: dict[Hashable, float] = {}  # tag -> until when nothing is remembered

    def get(self, key: K) -> V | None:
        held = self._held.get(key)
        if held is None:
            return None
        value, tag, until = held
        if until <= self.clock() or self._is_forgotten(tag):
            del self._held[key]
            return None
        self._held.move_to_end(key)
        return value

    def put(self, key: K, value: V, tag: Hashable) -> None:
        if self.ttl <= 0 or self._is_forgotten(tag):
            return
        self._held[key] = (value, tag, self.clock() + self.ttl)
        self._held.move_to_end(key)
        while len(self._held) > self.max_entries:
            self._held.popitem(last=False)

    def forget(self, tag: Hashable) -> None:
        now = self.clock()
        self._forgotten = {t: until for t, until in self._forgotten.items() if until > now}
        self._forgotten[tag] = now + max(self.ttl, 0)
        for key in [k for k, (_, t, _) in self._held.items() if t == tag]:
            del self._held[key]

    def clear(self) -> None:
        self._held.clear()
        self._forgotten.clear()

    def _is_forgotten(self, tag: Hashable) -> bool:
        if not self._forgotten:
            return False
        until = self._forgotten.get(tag)
        return until is not None and until > self.clock()
